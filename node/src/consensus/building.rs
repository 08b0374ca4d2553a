//! Building this node's proposals from its mempool.
//!
//! A proposer builds at the engine's request (`GetValue`), on the committed state. But when
//! more transactions wait than a block holds, the chain is behind its load and every height
//! runs build, check and commit one after another. Then the proposer of the next height does
//! not wait for the request: as soon as a height is decided it starts building the next block,
//! over the decided block that is still being committed (ledger-core's `PendingHead`: the
//! block's update over the state before it), so that the durable commit and the build overlap.
//! Nothing is lost by not waiting: the block would be full either way.
//!
//! Either way a block holds only transactions that were in the mempool when its time was read,
//! so a block's time never precedes the admission of a transaction it holds: an evidence
//! attestation is never dated before it was submitted.
//!
//! A block built early is proposed only when the commit ends, and every validator refuses a
//! proposal dated further than the clock-skew bound from its own clock. On a large ledger a
//! commit takes seconds, long enough that a block dated when its build started would be too
//! old to propose and would be built again after the commit, wasting the build. So a block
//! built early is dated ahead by as long as its parent's commit should take, from this node's
//! last commit ([`BuildPace::early_time_lead_ms`]): about when it will be proposed. That is
//! still no earlier than any transaction's admission, and no later than its own commit.

use super::context::{Address, Height, IpledgerContext, ValidatorSet};
use crate::mempool::Mempool;
use crate::store::Snapshot;
use anyhow::{Context as _, Result};
use ledger_core::block::CommitCertificate;
use ledger_core::execute::{BlockBuilder, ExecutedBlock, Parent, PendingHead};
use ledger_core::rejection::TxError;
use ledger_core::rules::{BlockContext, VerifiedTx};
use ledger_core::state::{Overlay, StateKey, TxIndexRead, ValidatorSchedule};
use ledger_core::state_tree::{StateTree, TreeReader};
use ledger_core::tx::TxId;
use malachitebft_core_types::{Context as _, Round};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// A block built from the mempool, and the transactions the rules refused while building it
/// (they leave the mempool).
pub struct BuiltBlock {
    /// The block and its writes.
    pub executed: ExecutedBlock,
    /// The refused transactions.
    pub refused: HashSet<TxId>,
}

/// Who builds a block, with what clock, and what ends the build: the same whether the block is
/// built at the engine's request or early, during its parent's commit.
pub struct BuildPlan {
    /// This node's validator address.
    pub proposer: Address,
    /// The local clock, in Unix milliseconds.
    pub clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// How far ahead of the clock the block is dated: 0, except for a block built early
    /// ([`BuildPace::early_time_lead_ms`]).
    pub time_lead_ms: u64,
    /// When building stops taking transactions.
    pub deadline: Instant,
    /// The most transactions the block may hold (this node's [`ProposalBudget`]; the chain's
    /// limits may end it sooner).
    pub txs_max: usize,
}

/// What a proposer's block is built from, besides the state and the mempool.
pub struct Proposing {
    /// The block's height.
    pub height: u64,
    /// Its parent's hash and certificate.
    pub parent: Parent,
    /// Its parent's time: the block's must be later.
    pub parent_time_ms: u64,
    /// Who builds it and what ends the build.
    pub plan: BuildPlan,
}

/// Builds the block `proposing` names on `state` (the state after its parent) from the
/// mempool's transactions, in mempool order, stopping at the block limits, at the proposer's
/// budget or at the deadline.
/// Transactions in `parent_txs` (the parent's, when it is still being committed and so still
/// in the mempool) are passed over.
///
/// The block time is read and the transactions are copied out under the mempool's lock, as many
/// as the block can hold; so every transaction the block holds was admitted before its time was
/// read, and admission goes on while the block is built. A transaction admitted after the copy
/// waits for the next block.
pub fn build<R: TreeReader + TxIndexRead>(
    state: &StateTree<'_, R>,
    mempool: &Mutex<Mempool>,
    parent_txs: &HashSet<TxId>,
    proposing: Proposing,
) -> Result<BuiltBlock> {
    let plan = &proposing.plan;
    let (mut builder, candidates) = {
        let mempool = mempool.lock().expect("mempool lock");
        let ctx = BlockContext {
            height: proposing.height,
            time_ms: ((plan.clock_ms)() + plan.time_lead_ms).max(proposing.parent_time_ms + 1),
        };
        let builder = BlockBuilder::new(state, ctx)?;
        let candidates: Vec<VerifiedTx> = mempool
            .iter()
            .filter(|vtx| !parent_txs.contains(&vtx.id()))
            .take(builder.room().min(plan.txs_max))
            .cloned()
            .collect();
        (builder, candidates)
    };
    let mut refused = HashSet::new();
    for vtx in &candidates {
        if Instant::now() > plan.deadline {
            break;
        }
        match builder.push(vtx) {
            Ok(true) => {}
            Ok(false) => break,
            Err(TxError::Rejected(_)) => {
                refused.insert(vtx.id());
            }
            Err(TxError::Storage(error)) => return Err(error.into()),
        }
    }
    let executed = builder.finish(state, plan.proposer.public_key(), proposing.parent)?;
    Ok(BuiltBlock { executed, refused })
}

/// What this node's last durable commit took per transaction, which dates its early builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BuildPace {
    /// This node's last durable commit of a non-empty block, per transaction, in microseconds.
    commit_us_per_tx: u64,
}

impl BuildPace {
    /// Records that a durable commit of a block of `txs` transactions took `took`.
    pub fn record_commit(&mut self, took: Duration, txs: usize) {
        let txs = u128::try_from(txs).expect("a usize fits a u128");
        // An empty block's commit says nothing per transaction.
        if let Some(us) = took.as_micros().checked_div(txs) {
            self.commit_us_per_tx = u64::try_from(us).unwrap_or(u64::MAX);
        }
    }

    /// This node's last durable commit of a non-empty block, per transaction, in microseconds
    /// (0 before the first): shown on `/metrics`, since it is what a node's early blocks are
    /// dated by and what a large ledger slows first.
    pub fn commit_us_per_tx(&self) -> u64 {
        self.commit_us_per_tx
    }

    /// How far ahead a block built during its parent's commit is dated, in milliseconds: as
    /// long as committing the parent's `parent_txs` transactions should take at this node's
    /// last commit's pace, which is about when the block will be proposed; but at most a
    /// quarter of the clock-skew bound, so that even if the commit ends at once the block is
    /// dated well within what the other validators accept.
    pub fn early_time_lead_ms(&self, parent_txs: usize, clock_skew_max_ms: u64) -> u64 {
        let expected_ms = self.commit_us_per_tx.saturating_mul(parent_txs as u64) / 1_000;
        expected_ms.min(clock_skew_max_ms / 4)
    }
}

/// What an early build needs besides the block being committed.
pub struct EarlyInputs {
    /// The committed state before the decided block (taken before its commit starts).
    pub before: Snapshot,
    /// The decided block's certificate, which the next block carries.
    pub certificate: CommitCertificate,
    /// The mempool to build from.
    pub mempool: Arc<Mutex<Mempool>>,
    /// The consensus context, which names each round's proposer.
    pub ctx: IpledgerContext,
    /// Who builds the block and what ends the build.
    pub plan: BuildPlan,
}

/// The next height's block, being built over the decided block while that block commits.
pub struct EarlyProposal {
    /// The height of the block being built.
    pub height: u64,
    task: JoinHandle<Result<Option<BuiltBlock>>>,
}

impl EarlyProposal {
    /// Starts building the block after `decided` on a blocking thread, if this node proposes
    /// its first round.
    pub fn start(decided: Arc<ExecutedBlock>, inputs: EarlyInputs) -> EarlyProposal {
        let height = decided.block.header.height + 1;
        let task = tokio::task::spawn_blocking(move || build_early(&decided, inputs));
        EarlyProposal { height, task }
    }

    /// The built block; `None` if this node does not propose the height's first round.
    pub async fn finish(self) -> Result<Option<BuiltBlock>> {
        self.task
            .await
            .context("the early build of a proposal panicked")?
    }
}

fn build_early(decided: &ExecutedBlock, inputs: EarlyInputs) -> Result<Option<BuiltBlock>> {
    let decided_height = decided.block.header.height;
    let height = decided_height + 1;
    let pending = PendingHead::new(&inputs.before, decided);
    let state = StateTree::new(&pending, Some(decided_height));
    let schedule: ValidatorSchedule = Overlay::new(&state)
        .get(&StateKey::ValidatorSchedule)?
        .context("validator schedule missing from state")?;
    let validators = schedule
        .set_at(height)
        .with_context(|| format!("no validator set for height {height}"))?;
    let set = ValidatorSet::from_ledger(validators);
    let first = inputs
        .ctx
        .select_proposer(&set, Height(height), Round::new(0));
    if first.address != inputs.plan.proposer {
        return Ok(None);
    }
    let proposing = Proposing {
        height,
        parent: Parent {
            hash: decided.block.header.hash(),
            certificate: Some(inputs.certificate),
        },
        parent_time_ms: decided.block.header.time_ms,
        plan: inputs.plan,
    };
    build(&state, &inputs.mempool, pending.tx_ids(), proposing).map(Some)
}

/// How many transactions this node's proposals may hold: the chain's limit, until this node
/// measures that the other validators could not check that many within the propose timeout, or
/// a proposal of its own fails to be decided in its round.
///
/// The other validators must check a proposal within the propose timeout. On a loaded machine
/// they may not manage a full block: they prevote nil, the round fails, and the next proposer,
/// finding even more transactions waiting, proposes another full block that fails the same
/// way. A failed round costs the whole propose timeout and a vote timeout, and the checks done
/// in it are thrown away. Two limits keep proposals checkable:
///
/// - **The check pace.** Each time this node checks another validator's non-empty proposal it
///   records how long that took per transaction, from the proposal's first part to its
///   verdict. Its own proposals then hold at most what a check at that pace finishes in half
///   the propose timeout; the other half is for the proposal to reach validators that started
///   the round earlier. Validators run the same software on the same load, so this node's pace
///   is its best estimate of theirs, learnt before any round fails. From one check to the next
///   the limit moves towards the size whose check takes exactly that half, whichever side it
///   starts on (a small block's check is dear per transaction, so its limit is larger).
/// - **The failures.** A proposer halves its budget each time its own proposal is not decided
///   in the round it was proposed in, and takes back a quarter each time a proposal that
///   filled its limit is. A later round of a height also halves, per round, what a fresh
///   proposal may hold, so that a height whose first proposal was too large to check ends with
///   a smaller one.
///
/// Only block size adapts: the ledger's rules and every timeout stay as the genesis sets them,
/// and the budget is this node's own choice, which no other validator checks. A validator
/// alone never checks another's proposal, so only the chain's limit and failures bound it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalBudget {
    /// The round-0 limit learnt from failures (at most `chain_max`).
    txs: usize,
    chain_max: usize,
    /// How long the check of a proposal may take: half the propose timeout.
    check_time_max: Duration,
    /// This node's last check of another validator's non-empty proposal, per transaction, in
    /// microseconds (0 before the first).
    check_us_per_tx: u64,
}

impl ProposalBudget {
    /// The least a budget falls to: a block of this many is checked in milliseconds.
    pub const FLOOR_TXS: usize = 64;

    /// A full budget under the chain's limit of `chain_max` transactions per block, for a
    /// chain whose propose timeout is `propose_timeout`.
    pub fn new(chain_max: usize, propose_timeout: Duration) -> ProposalBudget {
        assert!(
            chain_max > 0,
            "a chain's blocks hold at least one transaction"
        );
        assert!(!propose_timeout.is_zero(), "a propose timeout is positive");
        ProposalBudget {
            txs: chain_max,
            chain_max,
            check_time_max: propose_timeout / 2,
            check_us_per_tx: 0,
        }
    }

    /// The most a first-round proposal may hold.
    pub fn txs(&self) -> usize {
        self.for_round(0)
    }

    /// The most a fresh proposal may hold in `round` of a height: the budget (the lower of the
    /// failures' limit and the check pace's), halved per round after the first, never below
    /// [`Self::FLOOR_TXS`] (or the chain's limit, if lower).
    pub fn for_round(&self, round: u32) -> usize {
        let halved = self.round_zero().checked_shr(round).unwrap_or(0);
        halved.max(self.floor())
    }

    /// This node's last check of another validator's non-empty proposal, per transaction, in
    /// microseconds (0 before the first): shown on `/metrics`, since it sets the budget.
    pub fn check_us_per_tx(&self) -> u64 {
        self.check_us_per_tx
    }

    /// Records that checking another validator's proposal of `txs` transactions took `took`,
    /// from its first part to the verdict. A check shorter than a quarter of the time a check
    /// may take is not recorded: its time is mostly a block's fixed cost (the state root, the
    /// ledger nodes), so its pace per transaction would cap the next proposal at a few times
    /// its size, and a burst after a quiet spell would start with tiny blocks. The pace learnt
    /// under the last load stays until a check long enough to measure replaces it.
    pub fn record_check(&mut self, took: Duration, txs: usize) {
        if txs == 0 || took < self.check_time_max / 4 {
            return;
        }
        let txs = u128::try_from(txs).expect("a usize fits a u128");
        // Rounded up, so the limit errs towards checks that finish in time; and a check faster
        // than a microsecond per transaction still counts as one.
        let us = took.as_micros().div_ceil(txs).max(1);
        self.check_us_per_tx = u64::try_from(us).unwrap_or(u64::MAX);
    }

    /// Records how this node's proposal of `proposed` transactions, under a limit of `limit`,
    /// ended: decided in its round, or not.
    pub fn record(&mut self, proposed: usize, limit: usize, decided_in_its_round: bool) {
        if decided_in_its_round {
            // Only a proposal that used its whole limit says a larger one could be checked.
            if proposed >= limit {
                self.txs = (self.txs + self.txs.div_ceil(4)).min(self.chain_max);
            }
        } else {
            // Halve what the first round could hold, whichever limit set it.
            self.txs = (self.round_zero() / 2).max(self.floor());
        }
        assert!(
            self.floor() <= self.txs && self.txs <= self.chain_max,
            "budget {} outside {}..={}",
            self.txs,
            self.floor(),
            self.chain_max
        );
    }

    /// The lower of the failures' limit and what a check at this node's pace finishes in
    /// `check_time_max`.
    fn round_zero(&self) -> usize {
        let by_pace = match self
            .check_time_max
            .as_micros()
            .checked_div(u128::from(self.check_us_per_tx))
        {
            Some(txs) => usize::try_from(txs).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        self.txs.min(by_pace)
    }

    fn floor(&self) -> usize {
        Self::FLOOR_TXS.min(self.chain_max)
    }
}

#[cfg(test)]
mod tests {
    use super::{BuildPace, ProposalBudget};
    use proptest::prelude::*;
    use std::time::Duration;

    /// The propose timeout the budgets below are for: checks may take half of it, 1 s.
    const TIMEOUT: Duration = Duration::from_secs(2);

    /// A pace after one commit of `txs` transactions that took `us_per_tx` each.
    fn pace_after_commit(us_per_tx: u64, txs: usize) -> BuildPace {
        let mut pace = BuildPace::default();
        pace.record_commit(Duration::from_micros(us_per_tx * txs as u64), txs);
        pace
    }

    #[test]
    fn an_early_block_is_dated_ahead_by_its_parents_expected_commit_within_a_quarter_skew() {
        // 300 us per transaction, 4,000 transactions: the commit should take 1.2 s.
        let pace = pace_after_commit(300, 1_000);
        assert_eq!(pace.early_time_lead_ms(4_000, 5_000), 1_200);
        assert_eq!(
            pace.early_time_lead_ms(10_000, 5_000),
            1_250,
            "never more than a quarter of the skew bound"
        );
        assert_eq!(
            BuildPace::default().early_time_lead_ms(10_000, 5_000),
            0,
            "no commit measured yet"
        );
        let mut empty_commit = pace;
        empty_commit.record_commit(Duration::from_secs(1), 0);
        assert_eq!(
            empty_commit, pace,
            "an empty block's commit says nothing per transaction"
        );
        let mut slow = BuildPace::default();
        slow.record_commit(Duration::MAX, 1);
        assert_eq!(slow.early_time_lead_ms(usize::MAX, 5_000), 1_250);
    }

    #[test]
    fn a_failed_proposal_halves_the_budget_and_full_decided_ones_win_it_back() {
        let mut budget = ProposalBudget::new(10_000, TIMEOUT);
        assert_eq!(budget.txs(), 10_000);
        budget.record(10_000, 10_000, false);
        assert_eq!(budget.txs(), 5_000);
        budget.record(5_000, 5_000, false);
        assert_eq!(budget.txs(), 2_500);
        // A decided proposal that did not fill the budget says nothing about a larger one.
        budget.record(1_200, 2_500, true);
        assert_eq!(budget.txs(), 2_500);
        budget.record(2_500, 2_500, true);
        assert_eq!(budget.txs(), 3_125);
        for _ in 0..20 {
            let limit = budget.txs();
            budget.record(limit, limit, true);
        }
        assert_eq!(
            budget.txs(),
            10_000,
            "back to the chain's limit, and no further"
        );
    }

    #[test]
    fn later_rounds_halve_a_fresh_proposal_down_to_the_floor() {
        let budget = ProposalBudget::new(10_000, TIMEOUT);
        assert_eq!(budget.for_round(0), 10_000);
        assert_eq!(budget.for_round(1), 5_000);
        assert_eq!(budget.for_round(3), 1_250);
        assert_eq!(budget.for_round(20), ProposalBudget::FLOOR_TXS);
        assert_eq!(budget.for_round(u32::MAX), ProposalBudget::FLOOR_TXS);
        let tiny = ProposalBudget::new(10, TIMEOUT);
        assert_eq!(
            tiny.for_round(5),
            10,
            "a chain limit under the floor is the floor"
        );
    }

    #[test]
    fn a_proposal_holds_what_a_check_at_the_measured_pace_finishes_in_half_the_timeout() {
        let mut budget = ProposalBudget::new(10_000, TIMEOUT);
        assert_eq!(budget.check_us_per_tx(), 0);
        assert_eq!(budget.txs(), 10_000, "no check measured yet");
        // 8,000 transactions checked in 1.6 s: 200 us each, so 1 s holds 5,000.
        budget.record_check(Duration::from_millis(1_600), 8_000);
        assert_eq!(budget.check_us_per_tx(), 200);
        assert_eq!(budget.txs(), 5_000);
        assert_eq!(
            budget.for_round(1),
            2_500,
            "later rounds halve the capped limit"
        );
        budget.record_check(Duration::from_secs(1), 0);
        assert_eq!(
            budget.txs(),
            5_000,
            "an empty proposal says nothing per transaction"
        );
        // A check too short to measure leaves the pace as it was.
        budget.record_check(Duration::from_millis(249), 10);
        assert_eq!(budget.check_us_per_tx(), 200);
        // A faster check raises the limit again, up to the chain's.
        budget.record_check(Duration::from_millis(250), 5_000);
        assert_eq!(budget.check_us_per_tx(), 50);
        assert_eq!(budget.txs(), 10_000);
        budget.record_check(Duration::from_millis(250), usize::MAX);
        assert_eq!(
            budget.check_us_per_tx(),
            1,
            "never below a microsecond each"
        );
        assert_eq!(budget.txs(), 10_000);
        budget.record_check(Duration::MAX, 1);
        assert_eq!(
            budget.txs(),
            ProposalBudget::FLOOR_TXS,
            "never below the floor"
        );
    }

    #[test]
    fn from_a_small_block_the_pace_limit_grows_towards_what_a_check_finishes_in_time() {
        // Checks cost 50 ms plus 200 us per transaction: 4,750 transactions take exactly 1 s.
        let check = |txs: usize| Duration::from_micros(50_000 + 200 * txs as u64);
        let mut budget = ProposalBudget::new(50_000, TIMEOUT);
        // Quiet: a block of 5 is checked in 51 ms, which says nothing about a full one.
        budget.record_check(check(5), 5);
        assert_eq!(
            budget.txs(),
            50_000,
            "a short check does not cap the next proposal"
        );
        let mut limits = vec![];
        // The first check long enough to measure: 1,000 transactions in 250 ms.
        let mut proposed = 1_000;
        for _ in 0..12 {
            budget.record_check(check(proposed), proposed);
            proposed = budget.txs();
            limits.push(proposed);
        }
        assert!(limits.windows(2).all(|w| w[0] <= w[1]), "{limits:?}");
        let last = *limits.last().expect("twelve limits");
        assert!((4_600..=4_750).contains(&last), "{limits:?}");
        assert!(check(last) <= Duration::from_secs(1));
    }

    #[test]
    fn a_failure_halves_the_limit_the_pace_set() {
        let mut budget = ProposalBudget::new(10_000, TIMEOUT);
        budget.record_check(Duration::from_millis(1_600), 8_000);
        assert_eq!(budget.txs(), 5_000);
        budget.record(5_000, 5_000, false);
        assert_eq!(budget.txs(), 2_500);
        budget.record_check(Duration::from_millis(100), 1_000);
        assert_eq!(budget.txs(), 2_500, "a faster pace does not undo a failure");
    }

    proptest! {
        /// Whatever proposals succeed or fail, the budget stays between the floor and the
        /// chain's limit, and every round may propose something.
        #[test]
        fn the_budget_stays_within_its_bounds(
            chain_max in 1usize..60_000,
            outcomes in proptest::collection::vec(
                (any::<bool>(), 0usize..=100, 0u32..40, 0u64..5_000),
                0..200,
            ),
        ) {
            let mut budget = ProposalBudget::new(chain_max, TIMEOUT);
            for (decided, fill_percent, round, check_us) in outcomes {
                let limit = budget.for_round(round);
                let proposed = limit * fill_percent / 100;
                let before = budget.txs();
                budget.record(proposed, limit, decided);
                if !decided {
                    prop_assert!(budget.txs() <= before);
                }
                budget.record_check(Duration::from_micros(check_us * proposed as u64), proposed);
                prop_assert!(budget.txs() >= ProposalBudget::FLOOR_TXS.min(chain_max));
                prop_assert!(budget.txs() <= chain_max);
                prop_assert!(budget.for_round(round) >= 1);
            }
        }
    }
}
