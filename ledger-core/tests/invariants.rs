//! Property tests of the ledger's invariants over random histories.
//!
//! Each case starts a four-validator test chain on which the trading center has enrolled three
//! rights holders, who have registered four of the six assets of the universe and pledged two of
//! them (one twice). It then commits a random sequence of 1 to 40 transactions of every kind
//! (registrations, transfers, licences, pledges with and without first rank, official pledge
//! registrations, releases, enforcements with and without a court order, freezes, unfreezes,
//! court-ordered transfers, evidence, a late enrolment, replays of earlier transactions as they
//! were or signed again) in random block groupings, empty blocks included. Signers are chosen
//! correctly most of the time, and otherwise with a required signer left out, an extra party
//! added, an arbitrary set of parties, a key no party holds, a corrupted signature or an
//! unsorted signature list; some transactions expire within a few blocks, some ask for too long a
//! lifetime. `TestChain::commit` already re-executes each block as a validator and compares the
//! result; after every block each property below checks its invariant against the committed
//! state.
//!
//! The asset checks follow each asset's history (`AssetHistory(asset, n)`) event by event, keeping
//! a shadow of owner, active pledges and freeze as the history says they were *before* each
//! event. Every event is matched with the committed transaction that recorded it and that
//! transaction's signatures; at the end of each block the shadow must equal the asset record, so
//! a change the history does not show is caught too.
//!
//! A last property checks that batch signature verification (`VerifiedTx::verify_many`) gives
//! each transaction of a random batch the answer `VerifiedTx::verify` gives it.
//!
//! Every check was seen to fail: the tests at the end feed the checks a broken ledger, and
//! breaking rules one at a time in a scratch copy of `src/` (pledgee consent, freeze checks,
//! pledge removal order, first rank, replay pruning, discarding a refused transaction's writes,
//! the court-order transferee check, batch verification) made the matching property fail within
//! its cases.
//! `generator_reaches_every_action_and_the_encumbered_situations` checks the generator's reach.

mod common;

use common::{party, patent, work};
use ledger_core::block::{Block, BlockHeader};
use ledger_core::crypto::{Digest, PublicKey, Signature};
use ledger_core::execute::{
    execute_block, execute_genesis, BlockBuilder, ExecutedBlock, Parent, PendingHead,
};
use ledger_core::rejection::TxError;
use ledger_core::rules::{BlockContext, VerifiedTx};
use ledger_core::state::{
    AssetEvent, AssetRecord, HistoryEntry, PartyRecord, PledgeRecord, PledgeStatus, StateKey,
    StateRead, TxIndexRead,
};
use ledger_core::state_tree::{MemoryStateStore, StateTree, TreeReader};
use ledger_core::testkit::{test_key, TestChain, TEST_BLOCK_INTERVAL_MS, TEST_GENESIS_TIME_MS};
use ledger_core::tx::{Action, CourtOrder, PledgeTerms, SignedTx, TxId, Valuation};
use ledger_core::types::{AssetId, EvidenceKind, Money, RightKind, Role, WorkKind};
use proptest::prelude::*;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// The universe
// ---------------------------------------------------------------------------------------------

/// Every party a transaction may name or be signed by. `dave` is enrolled only if a history
/// enrols him; until then his key belongs to nobody.
const PARTIES: [&str; 11] = [
    "alice",
    "bob",
    "carol",
    "trading-center",
    "bank-a",
    "bank-b",
    "court",
    "court-2",
    "appraiser",
    "regulator",
    "dave",
];
/// Rights holders enrolled before every history.
const HOLDERS: [&str; 3] = ["alice", "bob", "carol"];
/// Who a pledge names as pledgee; `alice` is not a bank.
const PLEDGEES: [&str; 3] = ["bank-a", "bank-b", "alice"];
/// Who a court action names as court; `bank-a` is not a court.
const COURTS: [&str; 3] = ["court", "court-2", "bank-a"];
/// Case references.
const CASES: [&str; 2] = ["(2026)川01民初1号", "(2026)京73民初2号"];
/// Works, by content.
const WORKS: [&str; 4] = ["song", "film", "novel", "app"];
/// Patents, by number.
const PATENTS: [&str; 2] = ["ZL202110000001.X", "ZL202110000002.X"];
/// A key that no party ever holds.
const STRANGER: &str = "mallory";

fn assets() -> Vec<AssetId> {
    WORKS
        .iter()
        .map(|w| work(w))
        .chain(PATENTS.iter().map(|p| patent(p)))
        .collect()
}

fn asset_at(index: usize) -> AssetId {
    let all = assets();
    all[index % all.len()].clone()
}

fn block_time(height: u64) -> u64 {
    TEST_GENESIS_TIME_MS + height * TEST_BLOCK_INTERVAL_MS
}

// ---------------------------------------------------------------------------------------------
// Random histories
// ---------------------------------------------------------------------------------------------

/// What a step asks for; indices are resolved against the committed state when the step's block
/// is built, so that most steps are meaningful (the owner of the asset, an active pledge, ...).
#[derive(Clone, Debug)]
enum Op {
    RegisterWork {
        work: usize,
        owner: usize,
    },
    RecordPatent {
        patent: usize,
        owner: usize,
    },
    Transfer {
        asset: usize,
        to: usize,
    },
    Licence {
        asset: usize,
        licensee: usize,
        exclusive: bool,
        start_s: u64,
        len_s: u64,
    },
    Pledge {
        /// Asset indices, as for [`Run::pick_asset`].
        assets: Vec<usize>,
        /// Keep only the assets owned by the first asset's owner, once each.
        same_owner: bool,
        /// `None`: the owner of the first asset.
        pledgor: Option<usize>,
        pledgee: usize,
        first_rank: bool,
        /// Maturity, in blocks after the registering block (0 is refused as not in the future).
        maturity_blocks: u64,
        appraised: bool,
    },
    RecordPledgeRegistration {
        pledge: usize,
    },
    Release {
        pledge: usize,
    },
    Enforce {
        pledge: usize,
        to: usize,
        court: Option<usize>,
    },
    Freeze {
        asset: usize,
        court: usize,
        case: usize,
    },
    Unfreeze {
        asset: usize,
        /// A frozen asset, if any, named with the court and case of its freeze.
        matching: bool,
        court: usize,
        case: usize,
    },
    CourtTransfer {
        asset: usize,
        court: usize,
        to: usize,
        case: usize,
    },
    Attest {
        attestor: usize,
        evidence: usize,
        asset: Option<usize>,
    },
    /// The trading center enrols a rights holder (`dave` in histories).
    Enroll {
        holder: &'static str,
    },
    /// Resubmits an earlier transaction of this history; with `resign`, its body signed again
    /// under this step's signing choice.
    Replay {
        pick: usize,
        resign: bool,
    },
}

/// How a step is signed, relative to the signers the rules require.
#[derive(Clone, Debug)]
enum Signing {
    Correct,
    /// One required signer left out (e.g. a pledgee of a transferred asset).
    DropOne(usize),
    /// A party with no part in the transaction signs too.
    AddOne(usize),
    /// An arbitrary set of parties signs (bit i: `PARTIES[i]`).
    Random(u16),
    /// The required signers plus a key no party holds.
    Stranger,
    /// The required signers, one signature corrupted.
    Forged,
    /// The required signers, signatures out of order.
    Unsorted,
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    signing: Signing,
    /// `valid_until` is the block height plus this.
    lifetime: u64,
}

/// A history: steps, cut into blocks by `block_sizes` (0 is an empty block; steps left over
/// after the sizes run out form one last block).
#[derive(Clone, Debug)]
struct Plan {
    steps: Vec<Step>,
    block_sizes: Vec<usize>,
}

impl Plan {
    fn blocks(&self) -> Vec<Vec<Step>> {
        let mut blocks = Vec::new();
        let mut rest = self.steps.as_slice();
        for &size in &self.block_sizes {
            if rest.is_empty() {
                break;
            }
            let (block, tail) = rest.split_at(size.min(rest.len()));
            blocks.push(block.to_vec());
            rest = tail;
        }
        if !rest.is_empty() {
            blocks.push(rest.to_vec());
        }
        blocks
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let p = || 0..PARTIES.len();
    let a = || 0..assets().len();
    // An asset index, or (above the asset count) "an encumbered asset".
    let target = || 0..2 * assets().len();
    prop_oneof![
        3 => (0..WORKS.len(), p()).prop_map(|(work, owner)| Op::RegisterWork { work, owner }),
        2 => (0..PATENTS.len(), p()).prop_map(|(patent, owner)| Op::RecordPatent { patent, owner }),
        5 => (target(), p()).prop_map(|(asset, to)| Op::Transfer { asset, to }),
        2 => (target(), p(), any::<bool>(), 0..4u64, 0..3u64).prop_map(
            |(asset, licensee, exclusive, start_s, len_s)| Op::Licence {
                asset,
                licensee,
                exclusive,
                start_s,
                len_s,
            }
        ),
        8 => (
            prop_oneof![
                9 => prop::collection::btree_set(target(), 1..=3).prop_map(Vec::from_iter),
                1 => prop::collection::vec(a(), 0..=3),
            ],
            prop::bool::weighted(0.8),
            prop::option::weighted(0.1, p()),
            prop_oneof![9 => 0..2usize, 1 => Just(2usize)],
            prop::bool::weighted(0.25),
            prop_oneof![1 => Just(0u64), 9 => 1..=4u64],
            any::<bool>(),
        )
            .prop_map(
                |(assets, same_owner, pledgor, pledgee, first_rank, maturity_blocks, appraised)| {
                    Op::Pledge {
                        assets,
                        same_owner,
                        pledgor,
                        pledgee,
                        first_rank,
                        maturity_blocks,
                        appraised,
                    }
                }
            ),
        1 => any::<usize>().prop_map(|pledge| Op::RecordPledgeRegistration { pledge }),
        2 => any::<usize>().prop_map(|pledge| Op::Release { pledge }),
        4 => (
            any::<usize>(),
            p(),
            prop::option::weighted(0.5, prop_oneof![5 => 0..2usize, 1 => Just(2usize)]),
        )
            .prop_map(|(pledge, to, court)| Op::Enforce { pledge, to, court }),
        3 => (target(), prop_oneof![5 => 0..2usize, 1 => Just(2usize)], 0..CASES.len())
            .prop_map(|(asset, court, case)| Op::Freeze { asset, court, case }),
        2 => (target(), prop::bool::weighted(0.7), 0..2usize, 0..CASES.len()).prop_map(
            |(asset, matching, court, case)| Op::Unfreeze {
                asset,
                matching,
                court,
                case,
            }
        ),
        2 => (target(), prop_oneof![5 => 0..2usize, 1 => Just(2usize)], p(), 0..CASES.len()).prop_map(|(asset, court, to, case)| {
            Op::CourtTransfer {
                asset,
                court,
                to,
                case,
            }
        }),
        2 => (p(), 0..3usize, prop::option::of(target())).prop_map(|(attestor, evidence, asset)| {
            Op::Attest {
                attestor,
                evidence,
                asset,
            }
        }),
        1 => Just(Op::Enroll { holder: "dave" }),
        3 => (any::<usize>(), prop::bool::weighted(0.3))
            .prop_map(|(pick, resign)| Op::Replay { pick, resign }),
    ]
}

fn signing_strategy() -> impl Strategy<Value = Signing> {
    prop_oneof![
        12 => Just(Signing::Correct),
        2 => any::<usize>().prop_map(Signing::DropOne),
        2 => (0..PARTIES.len()).prop_map(Signing::AddOne),
        2 => any::<u16>().prop_map(Signing::Random),
        1 => Just(Signing::Stranger),
        1 => Just(Signing::Forged),
        1 => Just(Signing::Unsorted),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    (
        op_strategy(),
        signing_strategy(),
        prop_oneof![24 => Just(50u64), 5 => 0..=3u64, 1 => Just(101u64)],
    )
        .prop_map(|(op, signing, lifetime)| Step {
            op,
            signing,
            lifetime,
        })
}

fn plan_strategy() -> impl Strategy<Value = Plan> {
    (
        prop::collection::vec(step_strategy(), 1..=40),
        prop::collection::vec(prop_oneof![1 => Just(0usize), 8 => 1..=5usize], 0..40),
    )
        .prop_map(|(steps, block_sizes)| Plan { steps, block_sizes })
}

// ---------------------------------------------------------------------------------------------
// Running a history and checking it
// ---------------------------------------------------------------------------------------------

/// Which invariants a run checks after every block (the shadow of each asset is kept always).
#[derive(Clone, Copy, Default)]
struct Checks {
    /// One owner per asset, an enrolled party, with one chain of title from its registration.
    ownership: bool,
    /// Pledged and frozen assets change owner only with the pledgees' consent or a court.
    encumbrances: bool,
    /// Active pledges stay in ledger order.
    pledge_order: bool,
    /// Committed transactions are refused when resubmitted.
    replays: bool,
    /// Refused transactions leave the block, and so the state root, as it was.
    rejected_leave_no_trace: bool,
    /// Re-executing the stored blocks from genesis on a fresh store gives the same headers.
    determinism: bool,
    /// Each stored block, built over its parent while the parent is not stored yet, is the
    /// block built after the parent's commit.
    pending_head: bool,
}

/// A committed transaction and where the ledger put it.
struct Committed {
    tx: SignedTx,
    height: u64,
    /// Its leaf index in the ledger-wide tree: the ledger order.
    ledger_index: u64,
}

/// An asset as its history says it is.
#[derive(Default, Debug)]
struct Shadow {
    owner: Option<String>,
    active_pledges: Vec<TxId>,
    freeze: Option<(String, String)>,
    history_len: u64,
    /// Every pledge ever registered on the asset, in registration order, with its rank then.
    pledged: Vec<(TxId, u32)>,
}

struct Run {
    checks: Checks,
    chain: TestChain,
    /// Every transaction built so far, with the names it was signed by.
    built: Vec<(SignedTx, Vec<String>)>,
    committed: BTreeMap<TxId, Committed>,
    /// Committed pledge registrations, in ledger order.
    pledges: Vec<TxId>,
    /// Committed registrations per asset.
    registrations: BTreeMap<AssetId, Vec<TxId>>,
    shadows: BTreeMap<AssetId, Shadow>,
    /// How often each action met each outcome, and each notable situation arose.
    stats: std::cell::RefCell<BTreeMap<String, usize>>,
}

impl Run {
    fn new(checks: Checks) -> Run {
        Run {
            checks,
            chain: TestChain::new(4),
            built: Vec::new(),
            committed: BTreeMap::new(),
            pledges: Vec::new(),
            registrations: BTreeMap::new(),
            shadows: BTreeMap::new(),
            stats: Default::default(),
        }
    }

    fn count(&self, what: impl Into<String>) {
        *self.stats.borrow_mut().entry(what.into()).or_insert(0) += 1;
    }

    /// Enrols the holders, registers four of the six assets and pledges two of them (one twice:
    /// rank 1 maturing two blocks later, rank 2 three blocks later; the other maturing six
    /// blocks later), checking like any other block.
    fn setup(&mut self) {
        let correct = |op| Step {
            op,
            signing: Signing::Correct,
            lifetime: 50,
        };
        let enrol = HOLDERS
            .iter()
            .map(|holder| correct(Op::Enroll { holder }))
            .collect::<Vec<_>>();
        let outcomes = self.block(&enrol);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let register = vec![
            correct(Op::RegisterWork { work: 0, owner: 0 }),
            correct(Op::RegisterWork { work: 1, owner: 1 }),
            correct(Op::RegisterWork { work: 2, owner: 0 }),
            correct(Op::RecordPatent {
                patent: 0,
                owner: 2,
            }),
        ];
        let outcomes = self.block(&register);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        let pledge = |asset, pledgee, first_rank, maturity_blocks| {
            correct(Op::Pledge {
                assets: vec![asset],
                same_owner: true,
                pledgor: None,
                pledgee,
                first_rank,
                maturity_blocks,
                appraised: true,
            })
        };
        let pledges = [
            pledge(2, 0, true, 2),
            pledge(1, 1, true, 6),
            pledge(2, 1, false, 3),
        ];
        let outcomes = self.block(&pledges);
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }

    fn run(&mut self, plan: &Plan) {
        self.setup();
        for block in plan.blocks() {
            self.block(&block);
        }
        if self.checks.determinism {
            self.check_determinism();
        }
        if self.checks.pending_head {
            self.check_pending_head();
        }
    }

    // --- reading state ---

    fn asset_record(&self, asset: &AssetId) -> Option<AssetRecord> {
        self.chain.get(&StateKey::Asset(asset.clone()))
    }

    fn pledge_record(&self, pledge: &TxId) -> Option<PledgeRecord> {
        self.chain.get(&StateKey::Pledge(*pledge))
    }

    fn party_record(&self, name: &str) -> Option<PartyRecord> {
        self.chain.get(&StateKey::Party(party(name)))
    }

    fn owner_or(&self, asset: &AssetId, fallback: &str) -> String {
        self.asset_record(asset)
            .map_or_else(|| fallback.to_owned(), |record| record.owner.0)
    }

    fn pledgees(&self, asset: &AssetId) -> Vec<String> {
        let Some(record) = self.asset_record(asset) else {
            return Vec::new();
        };
        record
            .active_pledges
            .iter()
            .filter_map(|p| self.pledge_record(p))
            .map(|p| p.pledgee.0)
            .collect()
    }

    /// A pledge to act on: usually an active one, sometimes any committed one (likely closed),
    /// or one that does not exist.
    fn pick_pledge(&self, pick: usize) -> TxId {
        let active: Vec<TxId> = self
            .pledges
            .iter()
            .filter(|p| self.pledge_record(p).map(|r| r.status) == Some(PledgeStatus::Active))
            .copied()
            .collect();
        let unknown = Digest::sha256(b"no such pledge");
        let any = |pick: usize| match self.pledges.len() {
            0 => unknown,
            n => self.pledges[pick % n],
        };
        match (pick % 8, active.len()) {
            (0, _) => unknown,
            (1, _) | (_, 0) => any(pick / 8),
            (_, n) => active[(pick / 8) % n],
        }
    }

    /// The asset a step names: below `assets().len()` that asset, above it (half the time) one
    /// of the currently pledged or frozen assets, if any.
    fn pick_asset(&self, index: usize) -> AssetId {
        let all = assets();
        if index < all.len() {
            return all[index].clone();
        }
        let encumbered: Vec<AssetId> = all
            .iter()
            .filter(|a| {
                self.asset_record(a)
                    .is_some_and(|r| !r.active_pledges.is_empty() || r.freeze.is_some())
            })
            .cloned()
            .collect();
        match encumbered.len() {
            0 => asset_at(index),
            n => encumbered[index % n].clone(),
        }
    }

    // --- building transactions ---

    /// The action of a step, and the parties the rules should require to sign it.
    fn resolve(&self, op: &Op) -> (Action, Vec<String>) {
        let name = |i: usize| PARTIES[i % PARTIES.len()].to_owned();
        match op {
            Op::RegisterWork { work, owner } => {
                let content = WORKS[work % WORKS.len()];
                let action = Action::RegisterWork {
                    content_hash: Digest::sha256(content.as_bytes()),
                    title: format!("Work {content}"),
                    kind: WorkKind::Music,
                    authors: vec![name(*owner)],
                    owner: party(&name(*owner)),
                };
                (action, vec![name(*owner)])
            }
            Op::RecordPatent { patent, owner } => {
                let action = Action::RecordRight {
                    registrar: party("trading-center"),
                    office: "CNIPA".into(),
                    kind: RightKind::Patent,
                    number: PATENTS[patent % PATENTS.len()].into(),
                    title: "A method".into(),
                    owner: party(&name(*owner)),
                };
                (action, vec!["trading-center".into(), name(*owner)])
            }
            Op::Transfer { asset, to } => {
                let asset = self.pick_asset(*asset);
                let mut signers = vec![self.owner_or(&asset, "alice")];
                signers.extend(self.pledgees(&asset));
                let to = party(&name(*to));
                (Action::TransferAsset { asset, to }, signers)
            }
            Op::Licence {
                asset,
                licensee,
                exclusive,
                start_s,
                len_s,
            } => {
                let asset = self.pick_asset(*asset);
                let mut signers = vec![self.owner_or(&asset, "bob")];
                signers.extend(self.pledgees(&asset));
                let start_ms = TEST_GENESIS_TIME_MS + start_s * 1_000;
                let action = Action::GrantLicence {
                    asset,
                    licensee: party(&name(*licensee)),
                    exclusive: *exclusive,
                    start_ms,
                    end_ms: start_ms + len_s * 1_000,
                };
                (action, signers)
            }
            Op::Pledge {
                assets,
                same_owner,
                pledgor,
                pledgee,
                first_rank,
                maturity_blocks,
                appraised,
            } => {
                let mut assets: Vec<AssetId> = assets.iter().map(|a| self.pick_asset(*a)).collect();
                if *same_owner {
                    // The registered assets among them owned by the first one's owner, once each.
                    let owner = |a: &AssetId| self.asset_record(a).map(|r| r.owner.0);
                    let first_owner = assets.iter().find_map(owner);
                    let mut kept: Vec<AssetId> = Vec::new();
                    for asset in &assets {
                        if first_owner.is_some()
                            && owner(asset) == first_owner
                            && !kept.contains(asset)
                        {
                            kept.push(asset.clone());
                        }
                    }
                    if !kept.is_empty() {
                        assets = kept;
                    }
                }
                let first_owner = assets.first().map(|a| self.owner_or(a, "carol"));
                let pledgor = match (pledgor, first_owner) {
                    (Some(p), _) => name(*p),
                    (None, Some(owner)) => owner,
                    (None, None) => "carol".into(),
                };
                let pledgee = PLEDGEES[pledgee % PLEDGEES.len()];
                let valuations = if *appraised {
                    vec![Valuation {
                        appraiser: party("appraiser"),
                        amount: Money {
                            minor_units: 500_000_000,
                            currency: "CNY".into(),
                        },
                        report_hash: Digest::sha256(b"valuation report"),
                    }]
                } else {
                    Vec::new()
                };
                let mut signers = vec![pledgor.clone(), pledgee.into(), "trading-center".into()];
                if *appraised {
                    signers.push("appraiser".into());
                }
                let terms = PledgeTerms {
                    assets,
                    pledgor: party(&pledgor),
                    pledgee: party(pledgee),
                    registrar: party("trading-center"),
                    secured_amount: Money {
                        minor_units: 100_000_000,
                        currency: "CNY".into(),
                    },
                    maturity_ms: block_time(self.chain.height() + 1 + maturity_blocks),
                    first_rank: *first_rank,
                    valuations,
                };
                (Action::RegisterPledge(terms), signers)
            }
            Op::RecordPledgeRegistration { pledge } => {
                let action = Action::RecordPledgeRegistration {
                    registrar: party("trading-center"),
                    pledge: self.pick_pledge(*pledge),
                    authority: "CNIPA".into(),
                    registration_number: format!("ZX{pledge}"),
                    date: "2026-01-02".into(),
                };
                (action, vec!["trading-center".into()])
            }
            Op::Release { pledge } => {
                let pledge = self.pick_pledge(*pledge);
                let pledgee = self
                    .pledge_record(&pledge)
                    .map_or_else(|| "bank-a".to_owned(), |r| r.pledgee.0);
                (Action::ReleasePledge { pledge }, vec![pledgee])
            }
            Op::Enforce { pledge, to, court } => {
                let pledge = self.pick_pledge(*pledge);
                let pledgee = self
                    .pledge_record(&pledge)
                    .map_or_else(|| "bank-b".to_owned(), |r| r.pledgee.0);
                let mut signers = vec![pledgee];
                let court_order = court.map(|c| {
                    let court = COURTS[c % COURTS.len()];
                    signers.push(court.into());
                    CourtOrder {
                        court: party(court),
                        case_ref: CASES[c % CASES.len()].into(),
                    }
                });
                let action = Action::EnforcePledge {
                    pledge,
                    transferee: party(&name(*to)),
                    court_order,
                };
                (action, signers)
            }
            Op::Freeze { asset, court, case } => {
                let court = COURTS[court % COURTS.len()];
                let action = Action::FreezeAsset {
                    asset: self.pick_asset(*asset),
                    court: party(court),
                    case_ref: CASES[case % CASES.len()].into(),
                };
                (action, vec![court.into()])
            }
            Op::Unfreeze {
                asset,
                matching,
                court,
                case,
            } => {
                let frozen: Vec<AssetId> = assets()
                    .into_iter()
                    .filter(|a| self.asset_record(a).is_some_and(|r| r.freeze.is_some()))
                    .collect();
                let asset = match frozen.len() {
                    n if *matching && n > 0 => frozen[asset % n].clone(),
                    _ => self.pick_asset(*asset),
                };
                let in_force = self.asset_record(&asset).and_then(|r| r.freeze);
                let (court, case_ref) = match in_force {
                    Some(freeze) if *matching => (freeze.court.0, freeze.case_ref),
                    _ => (
                        COURTS[court % COURTS.len()].to_owned(),
                        CASES[case % CASES.len()].to_owned(),
                    ),
                };
                let action = Action::UnfreezeAsset {
                    asset,
                    court: party(&court),
                    case_ref,
                };
                (action, vec![court])
            }
            Op::CourtTransfer {
                asset,
                court,
                to,
                case,
            } => {
                let court = COURTS[court % COURTS.len()];
                let action = Action::CourtOrderTransfer {
                    asset: self.pick_asset(*asset),
                    court: party(court),
                    to: party(&name(*to)),
                    case_ref: CASES[case % CASES.len()].into(),
                };
                (action, vec![court.into()])
            }
            Op::Attest {
                attestor,
                evidence,
                asset,
            } => {
                let action = Action::AttestEvidence {
                    attestor: party(&name(*attestor)),
                    evidence_hash: Digest::sha256(format!("evidence {evidence}").as_bytes()),
                    kind: EvidenceKind::WebPage,
                    case_ref: Some(CASES[evidence % CASES.len()].into()),
                    related_asset: asset.map(|a| self.pick_asset(a)),
                };
                (action, vec![name(*attestor)])
            }
            Op::Enroll { holder } => enrolment(holder),
            Op::Replay { .. } => unreachable!("replays are not resolved"),
        }
    }

    fn build(&mut self, step: &Step, height: u64) -> SignedTx {
        let (body, required) = match &step.op {
            Op::Replay { pick, resign } if !self.built.is_empty() => {
                let (earlier, names) = &self.built[pick % self.built.len()];
                if !resign {
                    return earlier.clone();
                }
                (earlier.body.clone(), names.clone())
            }
            Op::Replay { .. } => {
                let (action, required) = self.resolve(&Op::Attest {
                    attestor: 0,
                    evidence: 1,
                    asset: None,
                });
                (self.fresh_body(action, height, step.lifetime), required)
            }
            op => {
                let (action, required) = self.resolve(op);
                (self.fresh_body(action, height, step.lifetime), required)
            }
        };
        let names = choose_signers(&step.signing, required);
        let mut tx = SignedTx::unsigned(body);
        for name in &names {
            tx.sign(&test_key(name));
        }
        match step.signing {
            Signing::Forged => {
                if let Some(first) = tx.signatures.first_mut() {
                    let Signature::Ed25519(mut bytes) = first.signature;
                    bytes[40] ^= 0x01;
                    first.signature = Signature::Ed25519(bytes);
                }
            }
            Signing::Unsorted => match tx.signatures.len() {
                0 => {}
                1 => tx.signatures.push(tx.signatures[0].clone()),
                _ => tx.signatures.reverse(),
            },
            _ => {}
        }
        self.built.push((tx.clone(), names));
        tx
    }

    fn fresh_body(
        &mut self,
        action: Action,
        height: u64,
        lifetime: u64,
    ) -> ledger_core::tx::TxBody {
        let mut body = self.chain.body(action);
        body.valid_until = height + lifetime;
        body
    }

    // --- one block ---

    /// Builds, commits and checks one block.
    fn block(&mut self, steps: &[Step]) -> Vec<Result<(), TxError>> {
        let height = self.chain.height() + 1;
        let txs: Vec<SignedTx> = steps.iter().map(|s| self.build(s, height)).collect();
        let ledger_base = self.chain.leaf_count;
        let proposed = if self.checks.rejected_leave_no_trace {
            Some(self.check_rejected_leave_no_trace(&txs))
        } else {
            None
        };
        let outcomes = self.chain.commit(txs.clone());
        if let Some(proposed) = proposed {
            let committed: Vec<Option<&str>> = outcomes.iter().map(code).collect();
            assert_eq!(
                proposed, committed,
                "the rebuilt block has the same outcomes"
            );
        }
        let block = self.chain.blocks.last().expect("just committed").clone();
        assert_eq!(block.header.height, height);

        let mut accepted = 0u64;
        for (tx, outcome) in txs.iter().zip(&outcomes) {
            let id = tx.id();
            let kind = format!("{:?}", tx.body.action);
            let kind = kind.split([' ', '(']).next().unwrap_or_default();
            let replayed = if self.committed.contains_key(&id) {
                "replayed "
            } else {
                ""
            };
            self.count(format!(
                "{replayed}{kind}: {}",
                code(outcome).unwrap_or("ok")
            ));
            if self.checks.replays {
                self.check_resubmission_outcome(tx, outcome, height);
            }
            match outcome {
                Ok(()) => {
                    assert_eq!(
                        &block.txs[accepted as usize], tx,
                        "block holds accepted txs"
                    );
                    let committed = Committed {
                        tx: tx.clone(),
                        height,
                        ledger_index: ledger_base + accepted,
                    };
                    accepted += 1;
                    match &tx.body.action {
                        Action::RegisterPledge(_) => self.pledges.push(id),
                        Action::RegisterWork { content_hash, .. } => self
                            .registrations
                            .entry(AssetId::Work {
                                content_hash: *content_hash,
                            })
                            .or_default()
                            .push(id),
                        Action::RecordRight {
                            office,
                            kind,
                            number,
                            ..
                        } => self
                            .registrations
                            .entry(AssetId::Right {
                                office: office.clone(),
                                kind: *kind,
                                number: number.clone(),
                            })
                            .or_default()
                            .push(id),
                        _ => {}
                    }
                    assert!(
                        self.committed.insert(id, committed).is_none(),
                        "transaction {id} committed twice"
                    );
                }
                Err(TxError::Rejected(_)) => {}
                Err(TxError::Storage(error)) => panic!("memory storage failed: {error}"),
            }
        }
        assert_eq!(accepted as usize, block.txs.len());

        let events = self.follow_histories(height);
        if self.checks.ownership {
            self.check_ownership(&block.txs, &events);
        }
        if self.checks.pledge_order {
            self.check_pledge_order();
        }
        if self.checks.replays {
            self.check_committed_ids_are_refused();
        }
        outcomes
    }

    // --- invariant: one owner per asset, an enrolled party, one chain of title ---

    fn check_ownership(&self, block_txs: &[SignedTx], events: &BTreeMap<TxId, usize>) {
        for asset in assets() {
            let registrations = self
                .registrations
                .get(&asset)
                .map_or(&[][..], Vec::as_slice);
            assert!(
                registrations.len() <= 1,
                "{asset} was registered by {} committed transactions",
                registrations.len()
            );
            let Some(record) = self.asset_record(&asset) else {
                assert!(
                    registrations.is_empty(),
                    "{asset} registered but has no record"
                );
                continue;
            };
            assert_eq!(record.asset, asset);
            assert_eq!(
                registrations,
                &[record.registered.tx][..],
                "{asset}'s record names another registration"
            );
            let owner = self
                .party_record(&record.owner.0)
                .unwrap_or_else(|| panic!("{asset} is owned by {}, no party", record.owner));
            assert!(owner.active, "{asset} owned by inactive {}", record.owner);
            assert_ne!(
                owner.role,
                Role::Regulator,
                "{asset} owned by the regulator"
            );
            let shadow = &self.shadows[&asset];
            assert_eq!(
                Some(&record.owner.0),
                shadow.owner.as_ref(),
                "{asset}'s owner is not the end of its chain of title"
            );
        }
        // Every committed transaction that acts on assets wrote exactly its events.
        for tx in block_txs {
            let id = tx.id();
            let written = events.get(&id).copied().unwrap_or(0);
            let expected = match &tx.body.action {
                Action::RegisterWork { .. }
                | Action::RecordRight { .. }
                | Action::TransferAsset { .. }
                | Action::GrantLicence { .. }
                | Action::FreezeAsset { .. }
                | Action::UnfreezeAsset { .. }
                | Action::CourtOrderTransfer { .. } => Some(1),
                Action::RegisterPledge(terms) => Some(terms.assets.len()),
                Action::ReleasePledge { pledge } | Action::EnforcePledge { pledge, .. } => Some(
                    self.pledge_record(pledge)
                        .expect("closed pledge has a record")
                        .assets
                        .len(),
                ),
                Action::AttestEvidence { related_asset, .. } => {
                    assert!(written <= usize::from(related_asset.is_some()));
                    None
                }
                _ => Some(0),
            };
            if let Some(expected) = expected {
                assert_eq!(written, expected, "{id} wrote {written} asset events");
            }
        }
    }

    // --- following histories (always), with the encumbrance checks ---

    /// Walks every asset's new history entries, updating the shadows; returns how many events
    /// each transaction wrote.
    fn follow_histories(&mut self, height: u64) -> BTreeMap<TxId, usize> {
        let mut events = BTreeMap::new();
        let mut shadows = std::mem::take(&mut self.shadows);
        for asset in assets() {
            let Some(record) = self.asset_record(&asset) else {
                assert!(!shadows.contains_key(&asset), "{asset} disappeared");
                continue;
            };
            let shadow = shadows.entry(asset.clone()).or_default();
            assert!(record.history_len >= shadow.history_len, "history shrank");
            for n in shadow.history_len..record.history_len {
                let entry: HistoryEntry = self
                    .chain
                    .get(&StateKey::AssetHistory(asset.clone(), n))
                    .unwrap_or_else(|| panic!("{asset} history entry {n} missing"));
                assert_eq!(
                    entry.recorded.height, height,
                    "a new entry is of this block"
                );
                let committed = self
                    .committed
                    .get(&entry.recorded.tx)
                    .unwrap_or_else(|| panic!("{asset} history names uncommitted tx"));
                assert_eq!(committed.height, height);
                *events.entry(entry.recorded.tx).or_insert(0) += 1;
                self.follow_event(&asset, shadow, n, &entry, committed);
            }
            shadow.history_len = record.history_len;
            if self.checks.encumbrances {
                assert_eq!(
                    record.active_pledges, shadow.active_pledges,
                    "{asset}'s active pledges differ from its history"
                );
            }
            if self.checks.encumbrances {
                let freeze = record.freeze.map(|f| (f.court.0, f.case_ref));
                assert_eq!(
                    freeze, shadow.freeze,
                    "{asset}'s freeze differs from history"
                );
                assert_eq!(
                    Some(record.owner.0),
                    shadow.owner,
                    "{asset}'s owner changed without a history event"
                );
            }
        }
        // Entries referring to unknown assets are impossible to list; the shadows cover the
        // universe, which is every asset a transaction can name.
        self.shadows = shadows;
        events
    }

    fn signed_by(&self, tx: &SignedTx, name: &str) -> bool {
        let key: PublicKey = self
            .party_record(name)
            .unwrap_or_else(|| panic!("{name} signed but is no party"))
            .key;
        tx.signatures.iter().any(|s| s.signer == key)
    }

    fn pledgee_of(&self, pledge: &TxId) -> String {
        self.pledge_record(pledge)
            .expect("an active pledge has a record")
            .pledgee
            .0
    }

    /// Checks one history event against the shadow (the asset before it) and the committed
    /// transaction that recorded it, then applies it to the shadow.
    fn follow_event(
        &self,
        asset: &AssetId,
        shadow: &mut Shadow,
        n: u64,
        entry: &HistoryEntry,
        committed: &Committed,
    ) {
        let tx = &committed.tx;
        let id = entry.recorded.tx;
        let action = &tx.body.action;
        let own = self.checks.ownership;
        let enc = self.checks.encumbrances;
        let pledgees_signed = |shadow: &Shadow| {
            shadow
                .active_pledges
                .iter()
                .all(|p| self.signed_by(tx, &self.pledgee_of(p)))
        };
        let encumbered = match (shadow.active_pledges.is_empty(), &shadow.freeze) {
            (true, None) => "free",
            (false, None) => "pledged",
            (true, Some(_)) => "frozen",
            (false, Some(_)) => "pledged+frozen",
        };
        let event = format!("{:?}", entry.event);
        let event = event.split([' ', '(']).next().unwrap_or_default();
        self.count(format!("event {event} on {encumbered} asset"));
        if let AssetEvent::PledgeReleased { pledge } | AssetEvent::PledgeEnforced { pledge, .. } =
            &entry.event
        {
            let at = shadow.active_pledges.iter().position(|p| p == pledge);
            let places = shadow.active_pledges.len();
            self.count(format!(
                "pledge closed at place {:?} of {places}",
                at.map(|a| a + 1)
            ));
        }
        match &entry.event {
            AssetEvent::Registered { owner } => {
                if own {
                    assert_eq!(n, 0, "{asset} registered twice");
                    assert!(shadow.owner.is_none());
                    let named = match action {
                        Action::RegisterWork {
                            content_hash,
                            owner,
                            ..
                        } => (work_id(content_hash) == *asset).then_some(owner),
                        Action::RecordRight { owner, .. } => Some(owner),
                        _ => None,
                    };
                    assert_eq!(named, Some(owner), "{asset} registered by {action:?}");
                    assert!(
                        self.signed_by(tx, &owner.0),
                        "registration unsigned by owner"
                    );
                }
                shadow.owner = Some(owner.0.clone());
            }
            AssetEvent::Transferred { from, to } => {
                if own {
                    assert_eq!(
                        Some(&from.0),
                        shadow.owner.as_ref(),
                        "transfer from non-owner"
                    );
                }
                if enc {
                    assert_eq!(
                        action,
                        &Action::TransferAsset {
                            asset: asset.clone(),
                            to: to.clone()
                        },
                        "owner transfer recorded by another action"
                    );
                    assert!(
                        shadow.freeze.is_none(),
                        "frozen {asset} transferred by its owner in {id}"
                    );
                    assert!(self.signed_by(tx, &from.0), "transfer unsigned by owner");
                    assert!(
                        pledgees_signed(shadow),
                        "pledged {asset} transferred without every pledgee's signature in {id}"
                    );
                }
                shadow.owner = Some(to.0.clone());
            }
            AssetEvent::Licensed { .. } => {
                if enc {
                    assert!(matches!(action, Action::GrantLicence { asset: a, .. } if a == asset));
                    assert!(shadow.freeze.is_none(), "frozen {asset} licensed");
                    let owner = shadow.owner.as_deref().expect("registered");
                    assert!(self.signed_by(tx, owner), "licence unsigned by owner");
                    assert!(
                        pledgees_signed(shadow),
                        "pledged {asset} licensed without pledgees"
                    );
                }
            }
            AssetEvent::Pledged { pledge, rank } => {
                assert_eq!(*pledge, id, "a pledge is named by its registration");
                let Action::RegisterPledge(terms) = action else {
                    panic!("pledge recorded by {action:?}")
                };
                if enc {
                    assert!(terms.assets.contains(asset));
                    assert_eq!(
                        Some(&terms.pledgor.0),
                        shadow.owner.as_ref(),
                        "non-owner pledged"
                    );
                    assert!(shadow.freeze.is_none(), "frozen {asset} pledged");
                    assert!(self.signed_by(tx, &terms.pledgee.0));
                    assert!(self.signed_by(tx, &terms.pledgor.0));
                }
                if self.checks.pledge_order {
                    assert_eq!(
                        *rank as usize,
                        shadow.active_pledges.len() + 1,
                        "a new pledge ranks behind every active one"
                    );
                    assert!(
                        !terms.first_rank || shadow.active_pledges.is_empty(),
                        "first-rank pledge registered behind {:?}",
                        shadow.active_pledges
                    );
                }
                shadow.active_pledges.push(*pledge);
                shadow.pledged.push((*pledge, *rank));
            }
            AssetEvent::PledgeReleased { pledge } => {
                if enc {
                    assert_eq!(action, &Action::ReleasePledge { pledge: *pledge });
                    assert!(self.signed_by(tx, &self.pledgee_of(pledge)));
                }
                let at = shadow.active_pledges.iter().position(|p| p == pledge);
                let at = at.unwrap_or_else(|| panic!("{asset}: released pledge was not active"));
                shadow.active_pledges.remove(at);
            }
            AssetEvent::PledgeEnforced { pledge, from, to } => {
                let Action::EnforcePledge {
                    pledge: enforced,
                    transferee,
                    court_order,
                } = action
                else {
                    panic!("enforcement recorded by {action:?}")
                };
                if own {
                    assert_eq!(
                        Some(&from.0),
                        shadow.owner.as_ref(),
                        "enforced from non-owner"
                    );
                }
                if enc {
                    assert_eq!((enforced, transferee), (pledge, to));
                    assert!(self.signed_by(tx, &self.pledgee_of(pledge)));
                    match court_order {
                        Some(order) => {
                            assert!(self.signed_by(tx, &order.court.0), "court did not sign");
                        }
                        None => {
                            assert!(
                                shadow.freeze.is_none(),
                                "frozen {asset} enforced without a court order in {id}"
                            );
                            assert_eq!(
                                shadow.active_pledges.first(),
                                Some(pledge),
                                "junior pledge on {asset} enforced without a court order"
                            );
                            let maturity = self.pledge_record(pledge).expect("exists").maturity_ms;
                            assert!(
                                entry.recorded.time_ms >= maturity,
                                "enforced before maturity"
                            );
                        }
                    }
                }
                let at = shadow.active_pledges.iter().position(|p| p == pledge);
                let at = at.unwrap_or_else(|| panic!("{asset}: enforced pledge was not active"));
                shadow.active_pledges.remove(at);
                shadow.owner = Some(to.0.clone());
            }
            AssetEvent::Frozen { court, case_ref } => {
                if enc {
                    assert!(shadow.freeze.is_none(), "{asset} frozen twice");
                    assert!(matches!(action, Action::FreezeAsset { .. }));
                    assert!(self.signed_by(tx, &court.0), "freeze unsigned by court");
                }
                shadow.freeze = Some((court.0.clone(), case_ref.clone()));
            }
            AssetEvent::Unfrozen { court, case_ref } => {
                if enc {
                    assert_eq!(
                        shadow.freeze,
                        Some((court.0.clone(), case_ref.clone())),
                        "{asset} unfrozen by another court or case"
                    );
                    assert!(self.signed_by(tx, &court.0));
                }
                shadow.freeze = None;
            }
            AssetEvent::CourtTransferred {
                court,
                case_ref,
                from,
                to,
            } => {
                if own {
                    assert_eq!(
                        Some(&from.0),
                        shadow.owner.as_ref(),
                        "court took from non-owner"
                    );
                }
                if enc {
                    let expected = Action::CourtOrderTransfer {
                        asset: asset.clone(),
                        court: court.clone(),
                        to: to.clone(),
                        case_ref: case_ref.clone(),
                    };
                    assert_eq!(action, &expected);
                    assert!(
                        self.signed_by(tx, &court.0),
                        "court order unsigned by court"
                    );
                    let role = self.party_record(&court.0).expect("court exists").role;
                    assert_eq!(role, Role::Court);
                }
                shadow.owner = Some(to.0.clone());
            }
            AssetEvent::EvidenceAttested { evidence_hash } => {
                if enc {
                    assert!(matches!(
                        action,
                        Action::AttestEvidence { evidence_hash: h, related_asset: Some(a), .. }
                            if h == evidence_hash && a == asset
                    ));
                }
            }
        }
    }

    // --- invariant: active pledges keep ledger order ---

    fn check_pledge_order(&self) {
        for asset in assets() {
            let Some(record) = self.asset_record(&asset) else {
                continue;
            };
            let shadow = &self.shadows[&asset];
            let positions: Vec<u64> = record
                .active_pledges
                .iter()
                .map(|p| self.committed[p].ledger_index)
                .collect();
            assert!(
                positions.windows(2).all(|w| w[0] < w[1]),
                "{asset}'s active pledges are out of ledger order: {positions:?}"
            );
            let mut registered = shadow.pledged.iter();
            for (place, pledge) in record.active_pledges.iter().enumerate() {
                let (_, rank) = registered
                    .find(|(p, _)| p == pledge)
                    .unwrap_or_else(|| panic!("{asset}: active pledges not a subsequence"));
                assert!(
                    place < *rank as usize,
                    "{asset}: a pledge rose above its rank"
                );
                let pledge_record = self.pledge_record(pledge).expect("active pledge exists");
                assert_eq!(pledge_record.status, PledgeStatus::Active);
                let at = pledge_record
                    .assets
                    .iter()
                    .position(|a| a == &asset)
                    .expect("pledge names its asset");
                assert_eq!(pledge_record.ranks_at_registration[at], *rank);
            }
            assert_eq!(
                record.active_pledges, shadow.active_pledges,
                "{asset}'s active pledges are not those its history left active"
            );
        }
        for pledge in &self.pledges {
            let record = self.pledge_record(pledge).expect("committed pledge exists");
            let active = record.status == PledgeStatus::Active;
            for asset in &record.assets {
                let listed = self
                    .asset_record(asset)
                    .expect("pledged asset exists")
                    .active_pledges
                    .contains(pledge);
                assert_eq!(
                    listed, active,
                    "pledge {pledge} on {asset}: listed {listed}"
                );
            }
        }
    }

    // --- invariant: replays are refused ---

    /// A resubmitted committed transaction is refused: as a replay while it is not expired.
    fn check_resubmission_outcome(&self, tx: &SignedTx, outcome: &Result<(), TxError>, at: u64) {
        let Some(earlier) = self.committed.get(&tx.id()) else {
            return;
        };
        if VerifiedTx::verify(tx.clone()).is_err() {
            return; // refused on its signatures before any rule
        }
        let expected = if tx.body.valid_until >= at {
            "already_committed"
        } else {
            "expired"
        };
        assert_eq!(
            code(outcome),
            Some(expected),
            "resubmission at height {at} of a transaction committed at {}",
            earlier.height
        );
    }

    /// Every committed transaction, offered for the next block, is refused: `already_committed`
    /// while it is valid, `expired` after; the state answers every committed id with the height
    /// that committed it.
    fn check_committed_ids_are_refused(&self) {
        let height = self.chain.height();
        let state = self.chain.state();
        let ctx = BlockContext {
            height: height + 1,
            time_ms: block_time(height + 1),
        };
        let mut builder = BlockBuilder::new(&state, ctx).expect("next block starts");
        for (id, committed) in &self.committed {
            let valid_until = committed.tx.body.valid_until;
            assert_eq!(
                state.committed_height(id),
                Ok(Some(committed.height)),
                "the committed height of {id} at height {height}"
            );
            let vtx = VerifiedTx::verify(committed.tx.clone()).expect("committed txs verify");
            let expected = if valid_until > height {
                "already_committed"
            } else {
                "expired"
            };
            assert_eq!(
                code(&builder.push(&vtx).map(|_| ())),
                Some(expected),
                "replay of {id} (valid until {valid_until}) at height {}",
                height + 1
            );
            assert!(builder.is_empty());
        }
    }

    // --- invariant: refused transactions leave no trace ---

    /// Runs before the block is committed (so before `TestChain::commit`'s own re-execution
    /// could notice anything): plays the block's transactions as a proposer would on the
    /// committed state, and for each one the rules refuse (signature checks aside), finishes
    /// the accepted prefix before it twice, once followed by the refused transaction and once
    /// not, and compares the two headers (state root, tx root, ledger root, count). Returns each
    /// transaction's code, for comparison with the commit's outcomes.
    fn check_rejected_leave_no_trace(&self, txs: &[SignedTx]) -> Vec<Option<&'static str>> {
        let parent_state = self.chain.state();
        let height = self.chain.height() + 1;
        let ctx = BlockContext {
            height,
            time_ms: block_time(height),
        };
        let mut prefix: Vec<VerifiedTx> = Vec::new();
        let mut codes = Vec::new();
        for tx in txs {
            let vtx = match VerifiedTx::verify(tx.clone()) {
                Ok(vtx) => vtx,
                Err(refused) => {
                    codes.push(Some(refused.code()));
                    continue;
                }
            };
            let mut builder = prefix_builder(&parent_state, ctx, &prefix);
            let len = builder.len();
            match builder.push(&vtx) {
                Ok(true) => {
                    prefix.push(vtx);
                    codes.push(None);
                }
                Err(error) => {
                    let refused = code(&Err(error));
                    assert_eq!(
                        builder.len(),
                        len,
                        "a refused transaction is not in the block"
                    );
                    let with = finish_header(builder, &parent_state);
                    let without =
                        finish_header(prefix_builder(&parent_state, ctx, &prefix), &parent_state);
                    assert_eq!(
                        with,
                        without,
                        "refused {} ({refused:?}) changed the block",
                        tx.id()
                    );
                    codes.push(refused);
                }
                Ok(false) => panic!("test blocks are never full"),
            }
        }
        codes
    }

    // --- invariant: determinism ---

    /// Re-executes every stored block from genesis on a fresh store, as a syncing node would,
    /// and compares each header and state root with the chain's.
    fn check_determinism(&self) {
        let mut store = MemoryStateStore::new();
        let (genesis_root, update) =
            execute_genesis(&StateTree::new(&store, None), &self.chain.genesis).expect("genesis");
        store.write(&update);
        assert_eq!(
            genesis_root,
            StateTree::new(&self.chain.state_store, Some(0))
                .root()
                .unwrap()
        );
        let mut parent_hash = self.chain.genesis.hash();
        for block in &self.chain.blocks {
            let height = block.header.height;
            let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(block.txs.clone())
                .into_iter()
                .map(|v| v.expect("stored transactions verify"))
                .collect();
            let state = StateTree::new(&store, Some(height - 1));
            let executed =
                execute_block(&state, block, &verified, parent_hash).expect("block re-executes");
            assert_eq!(
                executed.block, *block,
                "block {height} re-executes identically"
            );
            store.write(&executed.state_update);
            let root = StateTree::new(&store, Some(height)).root().unwrap();
            let original = StateTree::new(&self.chain.state_store, Some(height))
                .root()
                .unwrap();
            assert_eq!(root, block.header.state_root);
            assert_eq!(root, original, "state root of height {height}");
            parent_hash = block.header.hash();
        }
        for asset in assets() {
            let key = StateKey::Asset(asset).encode();
            let fresh = StateTree::new(&store, Some(self.chain.height()));
            assert_eq!(
                fresh.get(&key).unwrap(),
                self.chain.state().get(&key).unwrap()
            );
        }
    }
}

impl Run {
    /// Builds every stored block again from genesis on a fresh store, each one first over its
    /// parent still pending (`PendingHead`: the parent's executed update over the store without
    /// it), as a proposer builds while its node commits the parent, then after the parent is
    /// stored. Both give the stored block and the same state update, and over the pending parent
    /// each of the parent's transactions is already committed.
    fn check_pending_head(&self) {
        let mut store = MemoryStateStore::new();
        let (_, update) =
            execute_genesis(&StateTree::new(&store, None), &self.chain.genesis).expect("genesis");
        store.write(&update);
        let mut parent_hash = self.chain.genesis.hash();
        let mut pending: Option<ExecutedBlock> = None;
        for block in &self.chain.blocks {
            let height = block.header.height;
            let parent = Parent {
                hash: parent_hash,
                certificate: block.last_commit.clone(),
            };
            let built = match pending.take() {
                None => rebuild(&StateTree::new(&store, Some(height - 1)), block, &parent),
                Some(previous) => {
                    let head = PendingHead::new(&store, &previous);
                    let over_pending = StateTree::new(&head, Some(height - 1));
                    let early = rebuild(&over_pending, block, &parent);
                    for tx in previous
                        .block
                        .txs
                        .iter()
                        .filter(|tx| tx.body.valid_until >= height)
                    {
                        let mut builder = BlockBuilder::new(&over_pending, context(block))
                            .expect("the block starts over its pending parent");
                        let replay = VerifiedTx::verify(tx.clone()).expect("stored txs verify");
                        match builder.push(&replay) {
                            Err(TxError::Rejected(rejection)) => {
                                assert_eq!(rejection.code(), "already_committed")
                            }
                            other => {
                                panic!("a pending parent's transaction was not refused: {other:?}")
                            }
                        }
                    }
                    store.commit(&previous);
                    let after = rebuild(&StateTree::new(&store, Some(height - 1)), block, &parent);
                    assert_eq!(early.block, after.block, "block {height}, built early");
                    assert_eq!(
                        early.state_update, after.state_update,
                        "state update of block {height}, built early"
                    );
                    after
                }
            };
            assert_eq!(built.block, *block, "block {height} is rebuilt identically");
            parent_hash = block.header.hash();
            pending = Some(built);
        }
    }
}

fn context(block: &Block) -> BlockContext {
    BlockContext {
        height: block.header.height,
        time_ms: block.header.time_ms,
    }
}

/// Builds `block` again from its transactions, with its proposer, on `state`.
fn rebuild<R: TreeReader + TxIndexRead>(
    state: &StateTree<'_, R>,
    block: &Block,
    parent: &Parent,
) -> ExecutedBlock {
    let mut builder = BlockBuilder::new(state, context(block)).expect("the block starts");
    for tx in &block.txs {
        let vtx = VerifiedTx::verify(tx.clone()).expect("stored txs verify");
        assert_eq!(
            builder.push(&vtx),
            Ok(true),
            "a stored transaction is accepted again"
        );
    }
    builder
        .finish(state, block.header.proposer, parent.clone())
        .expect("the block finishes")
}

fn enrolment(holder: &str) -> (Action, Vec<String>) {
    let action = Action::EnrollRightsHolder {
        registrar: party("trading-center"),
        party: party(holder),
        name: format!("{holder} (holder)"),
        key: test_key(holder).public_key(),
        id_document_hash: Digest::sha256(holder.as_bytes()),
    };
    (action, vec!["trading-center".into(), holder.into()])
}

fn work_id(content_hash: &Digest) -> AssetId {
    AssetId::Work {
        content_hash: *content_hash,
    }
}

/// The rejection code of an outcome, `None` for success.
fn code(outcome: &Result<(), TxError>) -> Option<&'static str> {
    match outcome {
        Ok(()) => None,
        Err(TxError::Rejected(rejection)) => Some(rejection.code()),
        Err(TxError::Storage(error)) => panic!("memory storage failed: {error}"),
    }
}

fn choose_signers(signing: &Signing, mut required: Vec<String>) -> Vec<String> {
    match signing {
        Signing::Correct | Signing::Forged | Signing::Unsorted => {}
        Signing::DropOne(k) => {
            if !required.is_empty() {
                let k = k % required.len();
                required.remove(k);
            }
        }
        Signing::AddOne(p) => required.push(PARTIES[p % PARTIES.len()].into()),
        Signing::Random(mask) => {
            required = PARTIES
                .iter()
                .enumerate()
                .filter(|(i, _)| mask >> i & 1 == 1)
                .map(|(_, name)| (*name).to_owned())
                .collect();
        }
        Signing::Stranger => required.push(STRANGER.into()),
    }
    required.sort();
    required.dedup();
    required
}

/// Starts block `ctx` on `state` and pushes `prefix`, all of which must be accepted.
fn prefix_builder<'a>(
    state: &'a StateTree<'_, MemoryStateStore>,
    ctx: BlockContext,
    prefix: &[VerifiedTx],
) -> BlockBuilder<'a> {
    let mut builder = BlockBuilder::new(state, ctx).expect("block starts");
    for vtx in prefix {
        assert_eq!(builder.push(vtx), Ok(true), "the prefix is accepted again");
    }
    builder
}

/// Finishes a block with a fixed proposer and parent, so two finished blocks differ only by
/// what was pushed.
fn finish_header(
    builder: BlockBuilder<'_>,
    state: &StateTree<'_, MemoryStateStore>,
) -> BlockHeader {
    let parent = Parent {
        hash: Digest::sha256(b"parent"),
        certificate: None,
    };
    let executed = builder
        .finish(state, test_key("proposer").public_key(), parent)
        .expect("block finishes");
    executed.block.header
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/// Cases per history property: the six take about 31 s of one core in the test profile
/// (about 21 s on two). `PROPTEST_CASES` overrides every property's count, for a longer soak.
const CASES_PER_PROPERTY: u32 = 256;

fn config() -> ProptestConfig {
    config_with(CASES_PER_PROPERTY)
}

/// `cases` cases, unless `PROPTEST_CASES` says otherwise.
fn config_with(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        max_shrink_iters: 1024,
        ..ProptestConfig::default()
    }
}

fn run(plan: &Plan, checks: Checks) {
    Run::new(checks).run(plan);
}

proptest! {
    #![proptest_config(config())]

    /// Every asset has one owner, an active enrolled party that may own assets; it was
    /// registered by exactly one committed transaction, and every later owner is the `to` of an
    /// event whose `from` is the owner before it.
    #[test]
    fn random_histories_keep_one_enrolled_owner_per_asset(plan in plan_strategy()) {
        run(&plan, Checks { ownership: true, ..Checks::default() });
    }

    /// An asset with active pledges changes owner only by enforcement, a court order or a
    /// transfer signed by its owner and every active pledgee; a frozen asset only by a court
    /// order or court-ordered enforcement; the records equal what their histories say.
    #[test]
    fn random_histories_move_pledged_or_frozen_assets_only_with_consent_or_court(
        plan in plan_strategy()
    ) {
        run(&plan, Checks { encumbrances: true, ..Checks::default() });
    }

    /// Each asset's active pledges are in ledger order, a subsequence of the pledges registered
    /// on it, each still active, each ranked no lower than at registration; a first-rank pledge
    /// is only ever registered on unencumbered assets.
    #[test]
    fn random_histories_keep_active_pledges_in_ledger_order(plan in plan_strategy()) {
        run(&plan, Checks { pledge_order: true, ..Checks::default() });
    }

    /// Every committed transaction resubmitted later (in the same block or after) is refused
    /// as `already_committed` until its `valid_until`, then as `expired`.
    #[test]
    fn committed_transactions_are_refused_when_replayed(plan in plan_strategy()) {
        run(&plan, Checks { replays: true, ..Checks::default() });
    }

    /// A transaction the rules refuse leaves the block byte-identical: the same block prefix
    /// with and without it finishes with the same header, state root included.
    #[test]
    fn refused_transactions_leave_the_state_root_unchanged(plan in plan_strategy()) {
        run(&plan, Checks { rejected_leave_no_trace: true, ..Checks::default() });
    }

    /// Re-executing the stored blocks from genesis on a fresh store reproduces every block,
    /// header and state root.
    #[test]
    fn reexecuting_stored_blocks_from_genesis_reproduces_every_header(plan in plan_strategy()) {
        run(&plan, Checks { determinism: true, ..Checks::default() });
    }

    /// A block built over its parent before the parent is stored (as a proposer builds while
    /// its node commits) is the block built after the parent's commit, with the same update.
    #[test]
    fn blocks_built_over_a_pending_parent_match_blocks_built_after_its_commit(
        plan in plan_strategy()
    ) {
        run(&plan, Checks { pending_head: true, ..Checks::default() });
    }
}

/// How one transaction of a batch is signed.
#[derive(Clone, Copy, Debug)]
enum BatchSigning {
    Good,
    /// One signature's bytes changed.
    Corrupted,
    /// Signatures in reverse key order.
    Unsorted,
    /// The first signature twice.
    Duplicated,
}

fn batch_strategy() -> impl Strategy<Value = Vec<(usize, BatchSigning)>> {
    let signing = prop_oneof![
        12 => Just(BatchSigning::Good),
        1 => Just(BatchSigning::Corrupted),
        1 => Just(BatchSigning::Unsorted),
        1 => Just(BatchSigning::Duplicated),
    ];
    // Up to 300 transactions of 0 to 3 signatures: often more than one 256-signature chunk.
    prop::collection::vec((0..=3usize, signing), 1..300)
}

proptest! {
    #![proptest_config(config_with(64))]

    /// Batch verification gives every transaction exactly the answer a single verification
    /// gives it: a bad signature costs only its own transaction, in any chunk of the batch.
    #[test]
    fn verify_many_gives_each_transaction_the_answer_of_verify(specs in batch_strategy()) {
        let mut chain = TestChain::new(1);
        let txs: Vec<SignedTx> = specs
            .iter()
            .enumerate()
            .map(|(i, (signers, signing))| {
                let action = Action::AttestEvidence {
                    attestor: party("alice"),
                    evidence_hash: Digest::sha256(&i.to_le_bytes()),
                    kind: EvidenceKind::Document,
                    case_ref: None,
                    related_asset: None,
                };
                let mut tx = SignedTx::unsigned(chain.body(action));
                for name in &PARTIES[..*signers] {
                    tx.sign(&test_key(name));
                }
                match (signing, tx.signatures.len()) {
                    (_, 0) | (BatchSigning::Good, _) => {}
                    (BatchSigning::Corrupted, n) => {
                        let Signature::Ed25519(mut bytes) = tx.signatures[i % n].signature;
                        bytes[i % 64] ^= 0x10;
                        tx.signatures[i % n].signature = Signature::Ed25519(bytes);
                    }
                    (BatchSigning::Unsorted, 1) | (BatchSigning::Duplicated, _) => {
                        tx.signatures.push(tx.signatures[0].clone());
                    }
                    (BatchSigning::Unsorted, _) => tx.signatures.reverse(),
                }
                tx
            })
            .collect();
        let single: Vec<_> = txs.iter().cloned().map(VerifiedTx::verify).collect();
        let batched = VerifiedTx::verify_many(txs);
        prop_assert_eq!(batched, single);
    }
}

// ---------------------------------------------------------------------------------------------
// The checks can fail
// ---------------------------------------------------------------------------------------------

/// The refused-transaction check compares headers that a single write changes: pushing an
/// *accepted* transaction in place of the refused one makes the headers differ.
#[test]
fn header_comparison_of_the_no_trace_check_sees_one_write() {
    let mut run = Run::new(Checks::default());
    run.setup();
    let height = run.chain.height() + 1;
    let attest = Step {
        op: Op::Attest {
            attestor: 0,
            evidence: 2,
            asset: None,
        },
        signing: Signing::Correct,
        lifetime: 50,
    };
    let tx = run.build(&attest, height);
    let vtx = VerifiedTx::verify(tx).unwrap();
    let state = run.chain.state();
    let ctx = BlockContext {
        height,
        time_ms: block_time(height),
    };
    let mut builder = prefix_builder(&state, ctx, &[]);
    assert_eq!(builder.push(&vtx), Ok(true));
    let with = finish_header(builder, &state);
    let without = finish_header(prefix_builder(&state, ctx, &[]), &state);
    assert_ne!(with.state_root, without.state_root);
}

/// The encumbrance check refuses a history in which a pledged asset moved without its pledgee:
/// fed a transfer that the pledgee did not sign as if it had been committed, it panics.
#[test]
#[should_panic(expected = "without every pledgee's signature")]
fn encumbrance_check_catches_a_transfer_without_the_pledgee() {
    let mut run = Run::new(Checks {
        encumbrances: true,
        ..Checks::default()
    });
    run.setup();
    let pledge = Step {
        op: Op::Pledge {
            assets: vec![0],
            same_owner: true,
            pledgor: None,
            pledgee: 0,
            first_rank: true,
            maturity_blocks: 3,
            appraised: false,
        },
        signing: Signing::Correct,
        lifetime: 50,
    };
    let outcomes = run.block(&[pledge]);
    assert_eq!(outcomes, vec![Ok(())]);
    // The transfer as the rules accept it (owner and pledgee sign)...
    let transfer = Step {
        op: Op::Transfer { asset: 0, to: 1 },
        signing: Signing::Correct,
        lifetime: 50,
    };
    let outcomes = run.block(&[transfer]);
    assert_eq!(outcomes, vec![Ok(())]);
    // ...checked against a ledger in which the pledgee's signature is missing.
    let history_len = run.shadows[&asset_at(0)].history_len;
    let entry: HistoryEntry = run
        .chain
        .get(&StateKey::AssetHistory(asset_at(0), history_len - 1))
        .unwrap();
    let committed = run.committed.get_mut(&entry.recorded.tx).unwrap();
    committed
        .tx
        .signatures
        .retain(|s| s.signer != test_key("bank-a").public_key());
    let mut shadow = Shadow {
        owner: Some("alice".into()),
        active_pledges: run.shadows[&asset_at(0)].active_pledges.clone(),
        ..Shadow::default()
    };
    let committed = &run.committed[&entry.recorded.tx];
    run.follow_event(
        &asset_at(0),
        &mut shadow,
        history_len - 1,
        &entry,
        committed,
    );
}

/// The properties above are only as strong as the histories they see: this checks that the
/// generator reaches every action both accepted and refused, replays, and the encumbered
/// situations the rules are about. Run with `--nocapture` to see the counts.
#[test]
fn generator_reaches_every_action_and_the_encumbered_situations() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::new(config());
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..config().cases {
        let plan = plan_strategy().new_tree(&mut runner).unwrap().current();
        let mut run = Run::new(Checks::default());
        run.run(&plan);
        for (what, n) in run.stats.into_inner() {
            *total.entry(what).or_insert(0) += n;
        }
    }
    for (what, n) in &total {
        println!("{n:6}  {what}");
    }
    let seen = |prefix: &str| {
        total
            .iter()
            .any(|(what, n)| what.starts_with(prefix) && *n > 0)
    };
    let actions = [
        "EnrollRightsHolder",
        "RegisterWork",
        "RecordRight",
        "TransferAsset",
        "GrantLicence",
        "RegisterPledge",
        "RecordPledgeRegistration",
        "ReleasePledge",
        "EnforcePledge",
        "FreezeAsset",
        "UnfreezeAsset",
        "CourtOrderTransfer",
        "AttestEvidence",
    ];
    for action in actions {
        assert!(
            seen(&format!("{action}: ok")),
            "no history accepted a {action}"
        );
        let refused = total.iter().any(|(what, n)| {
            what.starts_with(&format!("{action}: ")) && !what.ends_with(": ok") && *n > 0
        });
        assert!(refused, "no history saw a {action} refused");
    }
    assert!(seen("replayed "), "no history replayed a transaction");
    assert!(
        seen("event Transferred on pledged"),
        "no pledged asset was transferred with consent"
    );
    assert!(
        seen("event PledgeEnforced on pledged+frozen") || seen("event PledgeEnforced on frozen"),
        "no frozen asset was enforced by court order"
    );
}

/// The determinism check re-executes what is stored: a stored block whose transactions were
/// reordered after it was certified no longer re-executes to its header.
#[test]
#[should_panic(expected = "block re-executes")]
fn determinism_check_catches_a_block_that_is_not_what_was_executed() {
    let mut run = Run::new(Checks::default());
    run.setup();
    run.chain.blocks[1].txs.swap(0, 1);
    run.check_determinism();
}
