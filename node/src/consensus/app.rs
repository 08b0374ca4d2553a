//! The application side of the consensus dialogue: answers every message of the engine.
//!
//! As proposer it builds a block from the mempool on the committed state and streams it in
//! parts; as any validator it reassembles streamed blocks, checks them (signatures, time, full
//! re-execution) before consensus votes, and commits a decided block durably before it tells the
//! engine so. Every block comes into being through ledger-core's `BlockBuilder` or
//! `execute_block`; this module only feeds them and persists their output.

use super::building::{
    self, BuildPace, BuildPlan, BuiltBlock, EarlyInputs, EarlyProposal, ProposalBudget, Proposing,
};
use super::certificate;
use super::context::{
    parts_sign_bytes, Address, BlockHash, Height, IpledgerContext, ProposalPart, ValidatorSet,
    PART_BYTES_MAX,
};
use super::misbehaviour::{self, MisbehaviourLog};
use super::signing::{verify_bytes, ConsensusSigner};
use super::streaming::{ExecutionWorker, STREAMING_EXECUTIONS_MAX};
use crate::mempool::{signed_hash, Mempool};
use crate::pruner::PruneTrigger;
use crate::store::Store;
use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use ledger_core::block::{Block, BlockDecoder, BlockPiece};
use ledger_core::crypto::{Digest, PublicKey};
use ledger_core::execute::{execute_block, BlockError, ExecutedBlock, Parent};
use ledger_core::genesis::Genesis;
use ledger_core::rejection::Rejection;
use ledger_core::rules::VerifiedTx;
use ledger_core::state::ValidatorSchedule;
use ledger_core::tx::SignedTx;
use malachitebft_app_channel::app::engine::host::{HeightParams, Next, SyncedValueOutcome};
use malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use malachitebft_app_channel::app::types::core::{LinearTimeouts, Round, Validity};
use malachitebft_app_channel::app::types::sync::RawDecidedValue;
use malachitebft_app_channel::app::types::{LocallyProposedValue, PeerId, ProposedValue};
use malachitebft_app_channel::{AppMsg, Channels, NetworkMsg};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::{error, info, warn};

/// The most partially received proposal streams kept at once.
pub const PART_STREAMS_MAX: usize = 64;
/// The most heights ahead of the committed one for which proposals are kept.
pub const PENDING_HEIGHTS_AHEAD_MAX: u64 = 3;
/// The most decided values served in one sync response.
pub const SYNC_VALUES_PER_RESPONSE_MAX: u64 = 64;

/// A committed block, announced to whoever waits for transactions to commit.
#[derive(Clone, Debug)]
pub struct Committed {
    /// Its height.
    pub height: u64,
    /// The ids of its transactions.
    pub tx_ids: Arc<Vec<Digest>>,
}

/// A block that was built or received and checked, waiting for consensus to decide it.
struct Undecided {
    executed: ExecutedBlock,
    bytes: Bytes,
    /// Whether it came by sync (decided before this node saw it) rather than by a proposal.
    synced: bool,
}

/// A fresh proposal of this node's, remembered until its height is decided.
struct OwnProposal {
    height: Height,
    round: Round,
    hash: BlockHash,
    /// How many transactions it held, of the `txs_max` it was allowed.
    txs: usize,
    txs_max: usize,
}

/// How the node follows the chain, for `/v1/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// True while the blocks this node commits come by sync: it is behind its peers. False once
    /// it commits a block decided in a round it took part in.
    pub syncing: bool,
    /// The last height committed from sync, if any since start.
    pub last_synced_height: Option<u64>,
}

/// What the application loop reports besides committed blocks.
#[derive(Clone, Debug)]
pub struct AppReports {
    /// Announcements of committed blocks.
    pub committed: broadcast::Sender<Committed>,
    /// The node keys the ledger admits at the head: the validators of the next height and of
    /// any scheduled change. Peers outside this set are disconnected.
    pub admitted: watch::Sender<BTreeSet<PublicKey>>,
    /// Sync progress.
    pub sync: watch::Sender<SyncReport>,
    /// How proposals from other validators were checked.
    pub checks: Arc<ProposalChecks>,
    /// The misbehaviour the engine reported, kept for organisations to report.
    pub misbehaviour: Arc<MisbehaviourLog>,
}

/// How proposals from other validators were checked: executed while their parts streamed in,
/// or in full once complete (a later height, too many at once, or the streamed execution
/// failed); how many of this node's own were built early, and the commit pace they are dated by.
#[derive(Debug, Default)]
pub struct ProposalChecks {
    /// Proposals whose execution ran while they streamed.
    pub streamed: std::sync::atomic::AtomicU64,
    /// Proposals executed once complete.
    pub complete: std::sync::atomic::AtomicU64,
    /// Proposed transactions whose signature check was reused from the mempool.
    pub reused_signatures: std::sync::atomic::AtomicU64,
    /// Proposals found invalid (this node prevoted nil on them).
    pub refused: std::sync::atomic::AtomicU64,
    /// This node's proposals built while it committed the block before them (see
    /// [`building`]).
    pub built_early: std::sync::atomic::AtomicU64,
    /// The most transactions this node's next first-round proposal may hold (its
    /// [`ProposalBudget`]).
    pub budget_txs: std::sync::atomic::AtomicU64,
    /// This node's last durable commit of a non-empty block, per transaction, in microseconds
    /// (its [`BuildPace`]).
    pub commit_us_per_tx: std::sync::atomic::AtomicU64,
    /// This node's last check of another validator's non-empty proposal, per transaction, in
    /// microseconds, which bounds its [`ProposalBudget`].
    pub check_us_per_tx: std::sync::atomic::AtomicU64,
    /// Time this node's block commits spent before redb's durable commit (waiting for the
    /// store's one writer, checking, inserting rows), since start, in microseconds (see
    /// [`crate::store::CommitTimes`]).
    pub commit_writing_us: std::sync::atomic::AtomicU64,
    /// Time this node's block commits spent in redb's durable commit (writing the dirty pages
    /// out, fsync), since start, in microseconds. Against the time elapsed, it says how much of
    /// it the node waited on its disk with the decision unanswered.
    pub commit_durable_us: std::sync::atomic::AtomicU64,
}

/// Where a block to check came from, which decides what is checked.
#[derive(Clone, Copy, Debug)]
enum BlockOrigin {
    /// Streamed by `proposer` for a round. A fresh proposal (not a re-proposed locked value)
    /// must carry a time within the skew bound of the local clock. Signatures this node checked
    /// when the transactions entered its mempool are not checked again.
    Proposal { proposer: Address, fresh: bool },
    /// Decided long ago and fetched by sync: every signature is checked, and the time only for
    /// never going backwards (execution checks that).
    Sync,
}

/// A block assembled from streamed parts, not yet checked against state.
struct Assembled {
    height: Height,
    round: Round,
    pol_round: Round,
    proposer: Address,
    bytes: Bytes,
    /// Its execution while it streamed, if that ran to the end.
    streamed: Option<ExecutionWorker>,
}

struct PartialStream {
    /// When its first part reached the application: a check's time is counted from here.
    opened: std::time::Instant,
    parts: BTreeMap<u64, ProposalPart>,
    fin_sequence: Option<u64>,
    bytes: usize,
    streamed: Option<StreamedBlock>,
}

/// A proposal at the next height being decoded and executed as its parts arrive.
struct StreamedBlock {
    height: Height,
    decoder: BlockDecoder,
    /// The next part sequence to feed the decoder.
    next: u64,
    /// Started once the head decoded; `None` before, and after anything went wrong.
    worker: Option<ExecutionWorker>,
    /// False once anything went wrong: the block will be checked in full when complete.
    alive: bool,
}

/// The engine closed its channel to the application: it stopped by itself. Malachite stops its
/// actors (and so signs nothing more) after a failed write or flush of its write-ahead log, and
/// logs the reason.
#[derive(Debug, thiserror::Error)]
#[error("the consensus engine stopped by itself (it closed its channel to the application)")]
pub struct EngineStopped;

/// Everything the application keeps between engine messages.
pub struct ConsensusApp {
    ctx: IpledgerContext,
    // The fields and methods marked `pub(super)` are what a lying validator's proposals
    // (`byzantine.rs`, feature `byzantine`) build on.
    pub(super) genesis: Arc<Genesis>,
    pub(super) store: Arc<Store>,
    pub(super) signer: Arc<ConsensusSigner>,
    mempool: Arc<Mutex<Mempool>>,
    reports: AppReports,
    pub(super) clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    undecided: HashMap<(Height, BlockHash), Undecided>,
    streams: HashMap<(PeerId, StreamId), PartialStream>,
    pending: Vec<Assembled>,
    decided_without_block: Option<Height>,
    /// The next height's block, if this node started building it while committing the last.
    early: Option<EarlyProposal>,
    /// What this node's last commit took per transaction, which dates its early builds.
    pace: BuildPace,
    /// How many transactions this node's proposals may hold.
    budget: ProposalBudget,
    /// This node's latest fresh proposal at a height not yet decided, to learn from its fate.
    own_proposal: Option<OwnProposal>,
    /// Wakes the pruning of replaced state-tree nodes after each commit.
    prune: PruneTrigger,
    /// How this validator lies, if it was built to (tests only).
    #[cfg(feature = "byzantine")]
    pub(super) liar: Option<Arc<super::byzantine::Liar>>,
}

impl ConsensusApp {
    /// Wires the application to its store, mempool, clock and pruner.
    pub fn new(
        genesis: Arc<Genesis>,
        store: Arc<Store>,
        signer: Arc<ConsensusSigner>,
        mempool: Arc<Mutex<Mempool>>,
        reports: AppReports,
        clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
        prune: PruneTrigger,
    ) -> ConsensusApp {
        let ctx = IpledgerContext::new(genesis.chain_id.as_str().into());
        let block_txs_max =
            usize::try_from(genesis.params.block_txs_max).expect("a u32 fits a usize");
        let budget = ProposalBudget::new(
            block_txs_max,
            Duration::from_millis(genesis.consensus.propose_timeout_ms),
        );
        let app = ConsensusApp {
            ctx,
            genesis,
            store,
            signer,
            mempool,
            reports,
            clock_ms,
            undecided: HashMap::new(),
            streams: HashMap::new(),
            pending: Vec::new(),
            decided_without_block: None,
            early: None,
            pace: BuildPace::default(),
            budget,
            own_proposal: None,
            prune,
            #[cfg(feature = "byzantine")]
            liar: None,
        };
        app.report_budget();
        app
    }

    /// Makes this validator lie as `liar` says (tests of Byzantine behaviour only).
    #[cfg(feature = "byzantine")]
    pub fn with_liar(mut self, liar: Option<Arc<super::byzantine::Liar>>) -> ConsensusApp {
        self.liar = liar;
        self
    }

    /// The consensus context.
    pub fn context(&self) -> IpledgerContext {
        self.ctx.clone()
    }

    /// Serves the engine until it stops. An error here (a failed durable write, a broken
    /// invariant) stops the node: it must not vote on state it could not persist.
    pub async fn run(mut self, channels: &mut Channels<IpledgerContext>) -> Result<()> {
        while let Some(msg) = channels.consensus.recv().await {
            self.handle(msg, channels).await?;
        }
        Err(EngineStopped.into())
    }

    async fn handle(
        &mut self,
        msg: AppMsg<IpledgerContext>,
        channels: &mut Channels<IpledgerContext>,
    ) -> Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                self.report_admitted()?;
                let start = Height(self.store.head_height()? + 1);
                info!(height = %start, "consensus ready");
                let _ = reply.send((start, self.height_params(start)?));
            }
            AppMsg::StartedRound {
                height,
                round,
                reply_value,
                ..
            } => {
                let ready = self.take_pending(height, round)?;
                let _ = reply_value.send(ready);
            }
            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                let value = self.propose(height, round, timeout, channels).await?;
                let _ = reply.send(value);
            }
            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }
            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                // Extensions are disabled in every height's parameters; refuse any that appear.
                let verdicts = extensions
                    .into_iter()
                    .map(|(address, ())| (address, Err(malachitebft_core_consensus::VoteExtensionError::InvalidVoteExtension)))
                    .collect();
                let _ = reply.send(verdicts);
            }
            AppMsg::RestreamProposal {
                height,
                round,
                valid_round,
                value_id,
                ..
            } => {
                self.restream(height, round, valid_round, value_id, channels)
                    .await?;
            }
            AppMsg::GetHistoryMinHeight { reply } => {
                // A ledger keeps its whole history, and every height is served to syncing peers.
                let _ = reply.send(Height(1));
            }
            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let value = self.receive_part(published_by.unwrap_or(from), part)?;
                let _ = reply.send(value);
            }
            AppMsg::Decided {
                certificate, reply, ..
            } => {
                self.commit(&certificate)?;
                let _ = reply.send(());
            }
            AppMsg::Finalized {
                certificate,
                evidence,
                reply,
                ..
            } => {
                if !evidence.is_empty() {
                    let seen = misbehaviour::from_engine(&evidence, &self.ctx.chain_id);
                    self.reports.misbehaviour.record(certificate.height.0, seen);
                }
                let next = self.next_after(certificate.height)?;
                let _ = reply.send(next);
            }
            AppMsg::GetDecidedValues { range, reply } => {
                let values = self.decided_values(range.start().0, range.end().0)?;
                let _ = reply.send(values);
            }
            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self.process_synced(height, round, proposer, value_bytes)?;
                let _ = reply.send(outcome);
            }
        }
        Ok(())
    }

    /// The validator set, timeouts and target block interval for `height`, read from the
    /// committed state (governance may have changed the set).
    fn height_params(&self, height: Height) -> Result<HeightParams<IpledgerContext>> {
        let (_, schedule) = self.schedule()?;
        let validators = schedule
            .set_at(height.0)
            .with_context(|| format!("no validator set for height {height}"))?;
        let consensus = &self.genesis.consensus;
        let timeouts = LinearTimeouts {
            propose: Duration::from_millis(consensus.propose_timeout_ms),
            prevote: Duration::from_millis(consensus.vote_timeout_ms),
            precommit: Duration::from_millis(consensus.vote_timeout_ms),
            rebroadcast: Duration::from_millis(
                consensus.propose_timeout_ms + 2 * consensus.vote_timeout_ms,
            ),
            ..LinearTimeouts::default()
        };
        let interval = Duration::from_millis(consensus.block_interval_ms);
        Ok(HeightParams::new(
            ValidatorSet::from_ledger(validators),
            timeouts,
            Some(interval),
        ))
    }

    /// The committed head height and the validator schedule in its state.
    fn schedule(&self) -> Result<(u64, ValidatorSchedule)> {
        let snapshot = self.store.snapshot()?;
        let head = snapshot.head_height()?;
        Ok((head, snapshot.validator_schedule(head)?))
    }

    /// Publishes the node keys the ledger admits at the head, if they changed.
    fn report_admitted(&self) -> Result<()> {
        let admitted = head_admitted_keys(&self.store)?;
        self.reports.admitted.send_if_modified(|current| {
            let changed = *current != admitted;
            if changed {
                *current = admitted;
            }
            changed
        });
        Ok(())
    }

    /// The hash and certificate of the block before `height` (the genesis before height 1).
    pub(super) fn parent(&self, height: Height) -> Result<(Parent, u64)> {
        if height.0 == 1 {
            let parent = Parent {
                hash: self.genesis.hash(),
                certificate: None,
            };
            return Ok((parent, self.genesis.genesis_time_ms));
        }
        let previous = height.0 - 1;
        let block = self
            .store
            .block(previous)?
            .with_context(|| format!("block {previous} missing from store"))?;
        let certificate = self
            .store
            .certificate(previous)?
            .with_context(|| format!("certificate {previous} missing"))?;
        let parent = Parent {
            hash: block.header.hash(),
            certificate: Some(certificate),
        };
        Ok((parent, block.header.time_ms))
    }

    async fn propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
        channels: &mut Channels<IpledgerContext>,
    ) -> Result<LocallyProposedValue<IpledgerContext>> {
        let txs_max = self
            .budget
            .for_round(round.as_u32().expect("a proposal's round is defined"));
        // Due by half the round's propose timeout, counted from the engine's request: the rest is
        // for the other validators to receive and check it.
        let deadline = std::time::Instant::now() + timeout / 2;
        let built = match self.take_early(height, round).await? {
            Some(built) => built,
            None => self.build_block(height, deadline, txs_max)?,
        };
        self.mempool
            .lock()
            .expect("mempool lock")
            .remove(&built.refused);
        let executed = built.executed;
        #[cfg(feature = "byzantine")]
        let executed = super::byzantine::bad_proposal(self, height, round, executed)?;
        let hash = BlockHash::from(executed.block.header.hash());
        let bytes = Bytes::from(executed.block.encode());
        info!(%height, %round, txs = executed.block.txs.len(), txs_max, %hash, "proposing");
        self.own_proposal = Some(OwnProposal {
            height,
            round,
            hash,
            txs: executed.block.txs.len(),
            txs_max,
        });
        self.publish_parts(height, round, Round::Nil, &bytes, channels)
            .await?;
        self.hold(height, hash, executed, bytes, false);
        #[cfg(feature = "byzantine")]
        super::byzantine::proposed(self, height, round, hash)?;
        Ok(LocallyProposedValue::new(height, round, hash))
    }

    /// The block built early for the first round of `height`, if one was, this node proposes
    /// it, and its time is still well within the clock skew other validators accept (a commit
    /// far longer than the last could age it); otherwise `None`, and the block is built now.
    async fn take_early(&mut self, height: Height, round: Round) -> Result<Option<BuiltBlock>> {
        let Some(early) = self.early.take() else {
            return Ok(None);
        };
        if early.height != height.0 || round != Round::new(0) {
            return Ok(None);
        }
        let Some(built) = early.finish().await? else {
            return Ok(None);
        };
        let off_ms = (self.clock_ms)().abs_diff(built.executed.block.header.time_ms);
        if off_ms > self.genesis.consensus.clock_skew_max_ms / 2 {
            warn!(%height, off_ms, "the block built early is dated too far from now to propose; building anew");
            return Ok(None);
        }
        self.reports
            .checks
            .built_early
            .fetch_add(1, Ordering::Relaxed);
        Ok(Some(built))
    }

    /// Builds the next block from the mempool on the committed state, stopping at the block
    /// limits, at `txs_max` transactions or at `deadline`.
    fn build_block(
        &self,
        height: Height,
        deadline: std::time::Instant,
        txs_max: usize,
    ) -> Result<BuiltBlock> {
        let (parent, parent_time_ms) = self.parent(height)?;
        let head = self.store.head_height()?;
        assert_eq!(
            head + 1,
            height.0,
            "the engine asks for a value only at the next height"
        );
        let snapshot = self.store.snapshot()?;
        let proposing = Proposing {
            height: height.0,
            parent,
            parent_time_ms,
            plan: self.build_plan(0, deadline, txs_max),
        };
        building::build(
            &snapshot.state(head),
            &self.mempool,
            &HashSet::new(),
            proposing,
        )
    }

    /// How this node builds its next block: dated `time_lead_ms` ahead, taking transactions
    /// until `deadline`, at most `txs_max` of them.
    fn build_plan(
        &self,
        time_lead_ms: u64,
        deadline: std::time::Instant,
        txs_max: usize,
    ) -> BuildPlan {
        BuildPlan {
            proposer: self.signer.address(),
            clock_ms: Arc::clone(&self.clock_ms),
            time_lead_ms,
            deadline,
            txs_max,
        }
    }

    async fn publish_parts(
        &self,
        height: Height,
        round: Round,
        pol_round: Round,
        bytes: &Bytes,
        channels: &mut Channels<IpledgerContext>,
    ) -> Result<()> {
        let stream = ProposalStream {
            chain_id: &self.ctx.chain_id,
            signer: &self.signer,
            id: stream_id(height, round),
            height,
            round,
            pol_round,
        };
        for message in stream.messages(bytes) {
            channels
                .network
                .send(NetworkMsg::PublishProposalPart(message))
                .await?;
        }
        Ok(())
    }

    async fn restream(
        &self,
        height: Height,
        round: Round,
        valid_round: Round,
        value_id: BlockHash,
        channels: &mut Channels<IpledgerContext>,
    ) -> Result<()> {
        match self.undecided.get(&(height, value_id)) {
            Some(undecided) => {
                self.publish_parts(height, round, valid_round, &undecided.bytes, channels)
                    .await
            }
            None => {
                warn!(%height, %round, %value_id, "asked to restream a block this node does not hold");
                Ok(())
            }
        }
    }

    /// Adds a streamed part; when its stream is complete, checks the block and returns the
    /// proposed value for consensus.
    fn receive_part(
        &mut self,
        peer: PeerId,
        part: StreamMessage<ProposalPart>,
    ) -> Result<Option<ProposedValue<IpledgerContext>>> {
        let key = (peer, part.stream_id.clone());
        if !self.streams.contains_key(&key) && self.streams.len() >= PART_STREAMS_MAX {
            warn!("dropping a proposal part: {PART_STREAMS_MAX} streams already open");
            return Ok(None);
        }
        let block_bytes_max = self.genesis.params.block_bytes_max as usize;
        let stream = self
            .streams
            .entry(key.clone())
            .or_insert_with(|| PartialStream {
                opened: std::time::Instant::now(),
                parts: BTreeMap::new(),
                fin_sequence: None,
                bytes: 0,
                streamed: None,
            });
        match part.content {
            StreamContent::Fin => stream.fin_sequence = Some(part.sequence),
            StreamContent::Data(data) => {
                stream.bytes += match &data {
                    ProposalPart::Data(chunk) => chunk.len(),
                    _ => 0,
                };
                stream.parts.insert(part.sequence, data);
            }
        }
        if stream.bytes > block_bytes_max {
            warn!("dropping a proposal stream larger than the block limit");
            self.streams.remove(&key);
            return Ok(None);
        }
        self.advance_streaming(&key)?;
        let stream = self.streams.get(&key).expect("present");
        let complete = stream
            .fin_sequence
            .is_some_and(|fin| stream.parts.len() as u64 == fin);
        if !complete {
            return Ok(None);
        }
        let stream = self.streams.remove(&key).expect("present");
        let opened = stream.opened;
        let Some(assembled) = self.assemble(stream) else {
            return Ok(None);
        };
        let head = self.store.head_height()?;
        if assembled.height.0 <= head || assembled.height.0 > head + PENDING_HEIGHTS_AHEAD_MAX {
            return Ok(None);
        }
        if assembled.height.0 > head + 1 {
            self.pending.push(assembled);
            return Ok(None);
        }
        let proposed = self.check_proposal(assembled)?;
        self.record_check_pace(&proposed, opened.elapsed());
        Ok(Some(proposed))
    }

    /// Learns from a valid proposal just checked, `took` after its first part arrived, how
    /// many transactions this node's own proposals may hold (see [`ProposalBudget`]). Only
    /// proposals checked as they complete are timed: one that arrived ahead of its height
    /// waits for it, and that wait is no check.
    fn record_check_pace(&mut self, proposed: &ProposedValue<IpledgerContext>, took: Duration) {
        if proposed.validity != Validity::Valid {
            return;
        }
        let Some(undecided) = self.undecided.get(&(proposed.height, proposed.value)) else {
            return;
        };
        self.budget
            .record_check(took, undecided.executed.block.txs.len());
        self.report_budget();
    }

    /// Feeds the parts that arrived in order to the stream's decoder and its transactions to
    /// its execution worker, starting one for a proposal at the next height.
    fn advance_streaming(&mut self, key: &(PeerId, StreamId)) -> Result<()> {
        let head = self.store.head_height()?;
        let live = self
            .streams
            .values()
            .filter(|stream| stream.streamed.as_ref().is_some_and(|s| s.alive))
            .count();
        let Some(stream) = self.streams.get_mut(key) else {
            return Ok(());
        };
        if stream.streamed.is_none() {
            match stream.parts.get(&0) {
                Some(ProposalPart::Init { height, .. })
                    if height.0 == head + 1 && live < STREAMING_EXECUTIONS_MAX =>
                {
                    stream.streamed = Some(StreamedBlock {
                        height: *height,
                        decoder: BlockDecoder::default(),
                        next: 1,
                        worker: None,
                        alive: true,
                    });
                }
                _ => return Ok(()),
            }
        }
        let streamed = stream.streamed.as_mut().expect("set above");
        let mut pieces = Vec::new();
        while streamed.alive {
            let Some(ProposalPart::Data(chunk)) = stream.parts.get(&streamed.next) else {
                break;
            };
            match streamed.decoder.feed(chunk) {
                Ok(decoded) => pieces.extend(decoded),
                Err(error) => {
                    warn!(height = %streamed.height, %error, "a streamed proposal does not decode; it will be checked when complete");
                    streamed.alive = false;
                    streamed.worker = None;
                }
            }
            streamed.next += 1;
        }
        if pieces.is_empty() || !streamed.alive {
            return Ok(());
        }
        let mut streamed = stream.streamed.take().expect("present");
        let fed = self.feed_streamed(&mut streamed, pieces);
        if let Some(stream) = self.streams.get_mut(key) {
            stream.streamed = Some(streamed);
        }
        fed
    }

    /// Starts the worker on a decoded head; checks decoded transactions' signatures (reusing
    /// the mempool's checks) and queues them for execution.
    fn feed_streamed(&self, streamed: &mut StreamedBlock, pieces: Vec<BlockPiece>) -> Result<()> {
        let mut txs = Vec::new();
        for piece in pieces {
            match piece {
                BlockPiece::Head {
                    header,
                    last_commit,
                } => {
                    let (parent, _) = self.parent(streamed.height)?;
                    match ExecutionWorker::start(
                        self.store.clone(),
                        header,
                        last_commit,
                        parent.hash,
                    ) {
                        Ok(worker) => streamed.worker = Some(worker),
                        Err(error) => {
                            warn!(%error, "cannot start an execution worker; the block will be checked when complete");
                            streamed.alive = false;
                            return Ok(());
                        }
                    }
                }
                BlockPiece::Tx(tx) => txs.push(tx),
            }
        }
        if txs.is_empty() {
            return Ok(());
        }
        let queued = match self.verify_signatures(&txs, true) {
            Ok(verified) => streamed
                .worker
                .as_ref()
                .is_some_and(|worker| worker.push(verified)),
            Err(_) => false,
        };
        if !queued {
            streamed.alive = false;
            streamed.worker = None;
        }
        Ok(())
    }

    /// Puts a completed stream together and checks the proposer's closing signature.
    fn assemble(&self, mut stream: PartialStream) -> Option<Assembled> {
        let streamed = stream
            .streamed
            .take()
            .filter(|streamed| streamed.alive && streamed.decoder.is_complete())
            .and_then(|streamed| streamed.worker);
        let mut parts = stream.parts.into_values();
        let Some(ProposalPart::Init {
            height,
            round,
            pol_round,
            proposer,
            block_len,
        }) = parts.next()
        else {
            warn!("dropping a proposal stream that does not open with Init");
            return None;
        };
        let mut bytes =
            Vec::with_capacity(block_len.min(self.genesis.params.block_bytes_max as u64) as usize);
        let mut signature = None;
        for part in parts {
            match (part, signature) {
                (ProposalPart::Data(chunk), None) => bytes.extend_from_slice(&chunk),
                (ProposalPart::Fin(fin), None) => signature = Some(fin),
                _ => {
                    warn!(%height, %round, "dropping a malformed proposal stream");
                    return None;
                }
            }
        }
        let bytes_hash = Digest::sha256(&bytes);
        let signed = parts_sign_bytes(&self.ctx.chain_id, height, round, &bytes_hash);
        let key = super::context::ConsensusPublicKey(proposer.0);
        if !signature.is_some_and(|s| verify_bytes(&key, &signed, &s))
            || bytes.len() as u64 != block_len
        {
            warn!(%height, %round, %proposer, "dropping a proposal stream with a bad signature or length");
            return None;
        }
        Some(Assembled {
            height,
            round,
            pol_round,
            proposer,
            bytes: Bytes::from(bytes),
            streamed,
        })
    }

    /// Proposals that arrived early for `height`, now checked, to hand to the engine.
    fn take_pending(
        &mut self,
        height: Height,
        round: Round,
    ) -> Result<Vec<ProposedValue<IpledgerContext>>> {
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|a| a.height == height && a.round == round);
        self.pending = later.into_iter().filter(|a| a.height > height).collect();
        ready
            .into_iter()
            .map(|assembled| self.check_proposal(assembled))
            .collect()
    }

    /// Checks a proposed block: decodes, proposer and time rules, signatures, full re-execution.
    fn check_proposal(&mut self, assembled: Assembled) -> Result<ProposedValue<IpledgerContext>> {
        let Assembled {
            height,
            round,
            pol_round,
            proposer,
            bytes,
            streamed,
        } = assembled;
        let origin = BlockOrigin::Proposal {
            proposer,
            fresh: pol_round == Round::Nil,
        };
        let (validity, value) = match self.check_block(height, &bytes, origin, streamed)? {
            Ok(executed) => {
                let hash = BlockHash::from(executed.block.header.hash());
                self.hold(height, hash, executed, bytes, false);
                (Validity::Valid, hash)
            }
            Err(reason) => {
                warn!(%height, %round, %proposer, %reason, "invalid proposal: voting nil");
                self.reports.checks.refused.fetch_add(1, Ordering::Relaxed);
                (Validity::Invalid, BlockHash::from(Digest::sha256(&bytes)))
            }
        };
        #[cfg(feature = "byzantine")]
        if let Some(liar) = &self.liar {
            liar.votes.saw_proposal(height, round, value);
        }
        Ok(ProposedValue {
            height,
            round,
            valid_round: pol_round,
            proposer,
            value,
            validity,
        })
    }

    /// Checks a block against the committed state. The outer error is a local failure (stop
    /// the node); the inner one says why the block is invalid.
    fn check_block(
        &self,
        height: Height,
        bytes: &[u8],
        origin: BlockOrigin,
        streamed: Option<ExecutionWorker>,
    ) -> Result<std::result::Result<ExecutedBlock, String>> {
        let block = match Block::decode(bytes) {
            Ok(block) => block,
            Err(error) => return Ok(Err(format!("undecodable block: {error}"))),
        };
        if block.header.height != height.0 {
            return Ok(Err(format!(
                "block says height {}, proposed for {height}",
                block.header.height
            )));
        }
        if let BlockOrigin::Proposal { proposer, fresh } = origin {
            if proposer.public_key() != block.header.proposer {
                return Ok(Err("header proposer is not the streaming proposer".into()));
            }
            let skew = self.genesis.consensus.clock_skew_max_ms;
            let now = (self.clock_ms)();
            if fresh && block.header.time_ms.abs_diff(now) > skew {
                return Ok(Err(format!(
                    "block time {} is more than {skew} ms from local time {now}",
                    block.header.time_ms
                )));
            }
        }
        if let Some(worker) = streamed {
            match worker.finish() {
                Ok(executed) if executed.block.encode() == bytes => {
                    self.reports.checks.streamed.fetch_add(1, Ordering::Relaxed);
                    return Ok(Ok(executed));
                }
                Ok(_) => {
                    warn!(%height, "streamed execution differs from the block; checking it in full")
                }
                Err(reason) => {
                    info!(%height, %reason, "streamed execution failed; checking the block in full")
                }
            }
        }
        let reuse = matches!(origin, BlockOrigin::Proposal { .. });
        if reuse {
            self.reports.checks.complete.fetch_add(1, Ordering::Relaxed);
        }
        let verified = match self.verify_signatures(&block.txs, reuse) {
            Ok(verified) => verified,
            Err(rejection) => {
                return Ok(Err(format!("a transaction signature fails: {rejection}")))
            }
        };
        let (parent, _) = self.parent(height)?;
        let head = self.store.head_height()?;
        let snapshot = self.store.snapshot()?;
        let state = snapshot.state(head);
        match execute_block(&state, &block, &verified, parent.hash) {
            Ok(executed) => Ok(Ok(executed)),
            Err(BlockError::Storage(error)) => Err(error.into()),
            Err(invalid) => Ok(Err(invalid.to_string())),
        }
    }

    /// Keeps a checked block until consensus decides at its height.
    pub(super) fn hold(
        &mut self,
        height: Height,
        hash: BlockHash,
        executed: ExecutedBlock,
        bytes: Bytes,
        synced: bool,
    ) {
        self.undecided.insert(
            (height, hash),
            Undecided {
                executed,
                bytes,
                synced,
            },
        );
    }

    /// Checks the signatures of a block's transactions, in batches. With `reuse`, a transaction
    /// waiting in the mempool with the same full signed bytes is taken as checked: it was, when
    /// it entered. The first failure is the answer.
    fn verify_signatures(
        &self,
        txs: &[SignedTx],
        reuse: bool,
    ) -> std::result::Result<Vec<VerifiedTx>, Rejection> {
        let mut verified: Vec<Option<VerifiedTx>> = vec![None; txs.len()];
        if reuse {
            let mempool = self.mempool.lock().expect("mempool lock");
            for (slot, tx) in verified.iter_mut().zip(txs) {
                *slot = mempool.verified(&tx.id(), &signed_hash(tx)).cloned();
            }
            let reused = verified.iter().filter(|slot| slot.is_some()).count();
            self.reports
                .checks
                .reused_signatures
                .fetch_add(reused as u64, Ordering::Relaxed);
        }
        let unchecked: Vec<SignedTx> = verified
            .iter()
            .zip(txs)
            .filter(|(slot, _)| slot.is_none())
            .map(|(_, tx)| tx.clone())
            .collect();
        let mut checked = VerifiedTx::verify_many(unchecked).into_iter();
        verified
            .into_iter()
            .map(|slot| match slot {
                Some(vtx) => Ok(vtx),
                None => checked
                    .next()
                    .expect("one result per unchecked transaction"),
            })
            .collect()
    }

    /// Commits the decided block, durably, with the decided certificate. If a full block is
    /// already waiting, the next block's build starts first, over the decided block, so that it
    /// runs during the commit (see [`building`]).
    fn commit(
        &mut self,
        certificate: &malachitebft_app_channel::app::types::core::CommitCertificate<
            IpledgerContext,
        >,
    ) -> Result<()> {
        let height = certificate.height;
        if self
            .early
            .as_ref()
            .is_some_and(|early| early.height <= height.0)
        {
            self.early = None;
        }
        self.learn_from_own_proposal(certificate);
        let Some(undecided) = self.undecided.remove(&(height, certificate.value_id)) else {
            error!(%height, value = %certificate.value_id, "decided a block this node does not hold; will restart the height and sync it");
            self.decided_without_block = Some(height);
            return Ok(());
        };
        let ledger_certificate = certificate::to_ledger(certificate);
        let decided = Arc::new(undecided.executed);
        if !undecided.synced && self.full_block_waiting(&decided) {
            let time_lead_ms = self.pace.early_time_lead_ms(
                decided.block.txs.len(),
                self.genesis.consensus.clock_skew_max_ms,
            );
            let deadline = std::time::Instant::now()
                + Duration::from_millis(self.genesis.consensus.propose_timeout_ms) / 2;
            self.early = Some(EarlyProposal::start(
                Arc::clone(&decided),
                EarlyInputs {
                    before: self.store.snapshot()?,
                    certificate: ledger_certificate.clone(),
                    mempool: Arc::clone(&self.mempool),
                    ctx: self.ctx.clone(),
                    plan: self.build_plan(time_lead_ms, deadline, self.budget.txs()),
                },
            ));
        }
        let times = self
            .store
            .commit_block(&decided, &ledger_certificate)
            .with_context(|| format!("durable commit of block {height} failed"))?;
        let commit_time = times.total();
        let checks = &self.reports.checks;
        for (total, part) in [
            (&checks.commit_writing_us, times.writing),
            (&checks.commit_durable_us, times.durable),
        ] {
            total.fetch_add(
                u64::try_from(part.as_micros()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        let commit_ms = crate::service::duration_ms(commit_time);
        self.pace
            .record_commit(commit_time, decided.block.txs.len());
        self.reports
            .checks
            .commit_us_per_tx
            .store(self.pace.commit_us_per_tx(), Ordering::Relaxed);
        self.prune.committed();
        let tx_ids = decided.tx_ids.clone();
        {
            let mut mempool = self.mempool.lock().expect("mempool lock");
            mempool.remove(&tx_ids.iter().copied().collect());
            mempool.remove_expired(height.0 + 1);
        }
        self.undecided.retain(|(h, _), _| *h > height);
        let durable_ms = crate::service::duration_ms(times.durable);
        info!(%height, txs = tx_ids.len(), synced = undecided.synced, commit_ms, durable_ms, "committed");
        self.reports.sync.send_modify(|report| {
            report.syncing = undecided.synced;
            if undecided.synced {
                report.last_synced_height = Some(height.0);
            }
        });
        self.report_admitted()?;
        // Nobody listening is fine: the API subscribes only while a client waits.
        let _ = self.reports.committed.send(Committed {
            height: height.0,
            tx_ids: Arc::new(tx_ids),
        });
        Ok(())
    }

    /// Whether a full block (by this node's budget) is already waiting in the mempool besides
    /// `decided`'s transactions: then building the next block now, during the commit, cannot
    /// leave out anything that waiting would have let in.
    fn full_block_waiting(&self, decided: &ExecutedBlock) -> bool {
        let waiting = self.mempool.lock().expect("mempool lock").len();
        waiting.saturating_sub(decided.block.txs.len()) >= self.budget.txs()
    }

    /// Adjusts the proposal budget once the height of this node's latest proposal is decided:
    /// halved if that proposal was not decided in its round (the validators could not check
    /// it in time, or it was lost), raised if it was and it filled its limit.
    fn learn_from_own_proposal(
        &mut self,
        certificate: &malachitebft_app_channel::app::types::core::CommitCertificate<
            IpledgerContext,
        >,
    ) {
        let Some(own) = self
            .own_proposal
            .take_if(|own| own.height <= certificate.height)
        else {
            return;
        };
        if own.height < certificate.height {
            // Its height ended without this node seeing the decision (it restarted the height
            // and synced): nothing to learn.
            return;
        }
        let decided_in_its_round =
            certificate.value_id == own.hash && certificate.round == own.round;
        let before = self.budget.txs();
        self.budget
            .record(own.txs, own.txs_max, decided_in_its_round);
        self.report_budget();
        let after = self.budget.txs();
        if after < before {
            warn!(height = %own.height, round = %own.round, proposed = own.txs, decided_round = %certificate.round, budget_txs = after, "this node's proposal was not decided in its round; halving its proposal budget");
        } else if after > before {
            info!(height = %own.height, budget_txs = after, "raising this node's proposal budget");
        }
    }

    /// Publishes the proposal budget for `/v1/status` and `/metrics`, and the check pace it
    /// is bounded by: the one place the reported figures are written, so they cannot drift
    /// from the budget.
    fn report_budget(&self) {
        let checks = &self.reports.checks;
        checks
            .budget_txs
            .store(self.budget.txs() as u64, Ordering::Relaxed);
        checks
            .check_us_per_tx
            .store(self.budget.check_us_per_tx(), Ordering::Relaxed);
    }

    fn next_after(&mut self, height: Height) -> Result<Next<IpledgerContext>> {
        if self.decided_without_block.take() == Some(height) {
            return Ok(Next::Restart(height, self.height_params(height)?));
        }
        let next = Height(height.0 + 1);
        Ok(Next::Start(next, self.height_params(next)?))
    }

    fn decided_values(
        &self,
        start: u64,
        end: u64,
    ) -> Result<Vec<RawDecidedValue<IpledgerContext>>> {
        let end = end
            .min(self.store.head_height()?)
            .min(start.saturating_add(SYNC_VALUES_PER_RESPONSE_MAX - 1));
        let mut values = Vec::new();
        for height in start..=end {
            let (Some(block), Some(certificate)) =
                (self.store.block(height)?, self.store.certificate(height)?)
            else {
                bail!("committed height {height} is missing its block or certificate");
            };
            values.push(RawDecidedValue::new(
                Bytes::from(block.encode()),
                certificate::to_engine(&certificate),
            ));
        }
        Ok(values)
    }

    fn process_synced(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        value_bytes: Bytes,
    ) -> Result<SyncedValueOutcome<IpledgerContext>> {
        // A synced block was decided long ago: only monotonic time is checked, not the skew.
        match self.check_block(height, &value_bytes, BlockOrigin::Sync, None)? {
            Ok(executed) => {
                let hash = BlockHash::from(executed.block.header.hash());
                self.hold(height, hash, executed, value_bytes, true);
                let value = ProposedValue {
                    height,
                    round,
                    valid_round: Round::Nil,
                    proposer,
                    value: hash,
                    validity: Validity::Valid,
                };
                Ok(SyncedValueOutcome::Verdict(value))
            }
            Err(reason) => {
                warn!(%height, %reason, "synced block is invalid");
                Ok(SyncedValueOutcome::PeerFault)
            }
        }
    }
}

/// The node keys the ledger admits at the store's committed head.
pub fn head_admitted_keys(store: &Store) -> Result<BTreeSet<PublicKey>> {
    let snapshot = store.snapshot()?;
    let head = snapshot.head_height()?;
    Ok(admitted_node_keys(
        &snapshot.validator_schedule(head)?,
        head,
    ))
}

/// The node keys admitted after `head`: every validator of the next height's set and of any set
/// scheduled after it.
pub fn admitted_node_keys(schedule: &ValidatorSchedule, head: u64) -> BTreeSet<PublicKey> {
    let next = head + 1;
    let current = schedule.set_at(next).unwrap_or_default();
    let scheduled = schedule
        .entries
        .iter()
        .filter(|entry| entry.from_height > next)
        .flat_map(|entry| entry.validators.iter());
    current
        .iter()
        .chain(scheduled)
        .map(|validator| validator.key)
        .collect()
}

/// The id of the stream carrying this node's proposal for a height and round.
pub(super) fn stream_id(height: Height, round: Round) -> StreamId {
    let mut bytes = height.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(&round.as_i64().to_be_bytes());
    StreamId::new(Bytes::from(bytes))
}

/// A proposal as a stream of parts: `Init`, the block in chunks of at most [`PART_BYTES_MAX`]
/// bytes, and `Fin` with the proposer's signature over [`parts_sign_bytes`], then the end.
pub(super) struct ProposalStream<'a> {
    pub(super) chain_id: &'a str,
    pub(super) signer: &'a ConsensusSigner,
    pub(super) id: StreamId,
    pub(super) height: Height,
    pub(super) round: Round,
    pub(super) pol_round: Round,
}

impl ProposalStream<'_> {
    /// The stream's messages for the encoded block `bytes`, in sequence.
    pub(super) fn messages(&self, bytes: &[u8]) -> Vec<StreamMessage<ProposalPart>> {
        let mut parts = vec![ProposalPart::Init {
            height: self.height,
            round: self.round,
            pol_round: self.pol_round,
            proposer: self.signer.address(),
            block_len: bytes.len() as u64,
        }];
        parts.extend(
            bytes
                .chunks(PART_BYTES_MAX)
                .map(|chunk| ProposalPart::Data(chunk.to_vec())),
        );
        let bytes_hash = Digest::sha256(bytes);
        let signature = self.signer.sign_bytes(&parts_sign_bytes(
            self.chain_id,
            self.height,
            self.round,
            &bytes_hash,
        ));
        parts.push(ProposalPart::Fin(signature));
        let count = parts.len() as u64;
        let mut messages: Vec<StreamMessage<ProposalPart>> = parts
            .into_iter()
            .enumerate()
            .map(|(sequence, part)| {
                StreamMessage::new(self.id.clone(), sequence as u64, StreamContent::Data(part))
            })
            .collect();
        messages.push(StreamMessage::new(
            self.id.clone(),
            count,
            StreamContent::Fin,
        ));
        messages
    }
}
