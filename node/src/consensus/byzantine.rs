//! A lying validator, for fault tests only: compiled with the node's `byzantine` feature, which
//! the production binary never has, and switched on by a `[byzantine]` section in the node's
//! config (`ipledger_genesis::ByzantineConfig`).
//!
//! Three places lie:
//!
//! - **Messages** (Malachite's `ByzantineNetworkProxy`, between the engine and the network):
//!   equivocated votes and proposals, dropped votes and proposals, ignored inbound proposals.
//!   Conflicting values are real: when this node proposes, it also builds a second valid block
//!   of the same height (the same parent, no transactions, a later time), holds it, and
//!   streams its parts when the proxy sends the conflicting proposal. A conflicting vote names
//!   that block when the vote was for this node's own proposal, and otherwise a made-up hash
//!   (a vote needs no block behind it to be a double vote).
//! - **Votes** ([`VoteFaults`], in the context's `new_prevote`/`new_precommit`): prevoting the
//!   round's proposal despite a lock (amnesia, Malachite's `Amnesia`) and precommitting nil.
//!   Only this node's own votes are bent, and each decision is remembered, so that rebuilding
//!   its own vote to check a certificate gives the vote it signed.
//! - **Proposals** ([`bad_proposal`], when the engine asks this node for a value): a block with
//!   a transaction whose signature fails, a block with a well-signed transaction the rules
//!   refuse (the node key signing for its organisation), a block far in the future, a block
//!   older than its parent. Honest validators must refuse each.
//!
//! Every lie is kept in [`Liar::lies`], so a test can check that none was ever committed.

use super::app::{stream_id, ConsensusApp, ProposalStream};
use super::codec::BorshCodec;
use super::context::{Address, BlockHash, Height, IpledgerContext};
use super::signing::ConsensusSigner;
use crate::runner::{EngineParts, ENGINE_REQUESTS_QUEUED_MAX};
use anyhow::{Context as _, Result};
use bytes::Bytes;
use ipledger_genesis::{ByzantineConfig as FaultConfig, Trigger};
use ledger_core::crypto::{Digest, Signature, SigningKey};
use ledger_core::execute::{BlockBuilder, ExecutedBlock};
use ledger_core::rules::BlockContext;
use ledger_core::tx::{Action, SignedTx, TxBody};
use ledger_core::types::{EvidenceKind, PartyId};
use malachitebft_app_channel::app::config::NodeConfig;
use malachitebft_app_channel::app::streaming::StreamId;
use malachitebft_app_channel::app::types::core::{NilOrVal, Round};
use malachitebft_app_channel::{
    ByzantineContext, Channels, EngineBuilder, EngineHandle, NetworkMsg, RequestContext,
    SyncContext,
};
use malachitebft_engine_byzantine::config::make_rng;
use malachitebft_engine_byzantine::{
    Amnesia, ByzantineConfig as EngineFaultConfig, ConflictingValueFn, ConflictingVoteValueFn,
    Trigger as EngineTrigger,
};
use rand::rngs::StdRng;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::warn;

/// How many lies [`Liar::lies`] keeps; later ones are only logged.
pub const LIES_KEPT_MAX: usize = 4_096;
/// How many heights of prepared conflicting blocks are kept for the proxy to ask for.
pub const CONFLICTING_HEIGHTS_KEPT: u64 = 4;
/// How many of its own vote decisions [`VoteFaults`] remembers; the lowest heights go first.
pub const VOTE_DECISIONS_KEPT_MAX: usize = 1_024;
/// Capacity of the queue of conflicting blocks to stream.
pub const CONFLICTING_STREAMS_QUEUED_MAX: usize = 64;
/// How far ahead of the clock a "future" block is, in multiples of the allowed clock skew.
pub const FUTURE_TIME_SKEWS: u64 = 10;

/// Malachite's trigger for ours.
pub fn engine_trigger(trigger: &Trigger) -> EngineTrigger {
    let rounds = |rounds: &[u32]| rounds.iter().map(|r| i64::from(*r)).collect();
    match trigger {
        Trigger::Never => EngineTrigger::Never,
        Trigger::Always => EngineTrigger::Always,
        Trigger::Random { probability } => EngineTrigger::Random {
            probability: *probability,
        },
        Trigger::AtHeights { heights } => EngineTrigger::AtHeights {
            heights: heights.clone(),
        },
        Trigger::AtRounds { rounds: r } => EngineTrigger::AtRounds { rounds: rounds(r) },
        Trigger::HeightRange { from, to } => EngineTrigger::HeightRange {
            from: *from,
            to: *to,
        },
        Trigger::AtHeightsAndRounds { heights, rounds: r } => EngineTrigger::AtHeightsAndRounds {
            heights: heights.clone(),
            rounds: rounds(r),
        },
    }
}

/// Malachite's fault configuration (the message faults and the vote faults) for ours.
pub fn engine_config(config: &FaultConfig) -> EngineFaultConfig {
    EngineFaultConfig {
        equivocate_votes: engine_trigger(&config.equivocate_votes),
        equivocate_proposals: engine_trigger(&config.equivocate_proposals),
        drop_votes: engine_trigger(&config.drop_votes),
        drop_proposals: engine_trigger(&config.drop_proposals),
        ignore_locks: engine_trigger(&config.ignore_locks),
        force_precommit_nil: engine_trigger(&config.force_precommit_nil),
        drop_inbound_proposals: engine_trigger(&config.drop_inbound_proposals),
        seed: config.seed,
    }
}

/// A seed for one of the liar's random streams: the configured seed moved by `stream`, so the
/// streams are independent yet reproducible; `None` (entropy) when no seed is configured.
fn stream_seed(config: &FaultConfig, stream: u64) -> Option<u64> {
    config.seed.map(|seed| seed.wrapping_add(stream))
}

/// The liar's own votes, bent in the context where the engine builds them.
pub struct VoteFaults {
    own: Address,
    amnesia: Amnesia<IpledgerContext>,
    force_precommit_nil: EngineTrigger,
    rng: Mutex<StdRng>,
    /// Decisions taken: the engine builds its own vote again to check certificates, and must
    /// get the vote it signed.
    decided: Mutex<BTreeMap<VoteAsked, NilOrVal<BlockHash>>>,
}

impl std::fmt::Debug for VoteFaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VoteFaults")
            .field("own", &self.own)
            .field("amnesia", &self.amnesia)
            .field("force_precommit_nil", &self.force_precommit_nil)
            .finish_non_exhaustive()
    }
}

/// A vote the engine asked this node to build: height, round, prevote (or precommit), and the
/// value an honest node would vote for. Ordered by height first, so the oldest go first.
type VoteAsked = (u64, i64, bool, Option<BlockHash>);

fn option(value: &NilOrVal<BlockHash>) -> Option<BlockHash> {
    match value {
        NilOrVal::Nil => None,
        NilOrVal::Val(hash) => Some(*hash),
    }
}

impl VoteFaults {
    fn new(config: &FaultConfig, own: Address) -> VoteFaults {
        VoteFaults {
            own,
            amnesia: Amnesia::new(engine_trigger(&config.ignore_locks), stream_seed(config, 1)),
            force_precommit_nil: engine_trigger(&config.force_precommit_nil),
            rng: Mutex::new(make_rng(stream_seed(config, 2))),
            decided: Mutex::new(BTreeMap::new()),
        }
    }

    /// Remembers a proposed value seen for a height and round (own or another validator's,
    /// valid or not): what amnesia prevotes for.
    pub fn saw_proposal(&self, height: Height, round: Round, value: BlockHash) {
        self.amnesia.record_proposed_value(height, round, value);
    }

    /// The prevote this node casts where an honest one would cast `value`.
    pub fn prevote(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        address: Address,
    ) -> NilOrVal<BlockHash> {
        if address != self.own {
            return value;
        }
        self.decide((height.0, round.as_i64(), true, option(&value)), || match (
            &value,
            self.amnesia.try_override_nil_prevote(height, round),
        ) {
            (NilOrVal::Nil, Some(proposed)) => NilOrVal::Val(proposed),
            _ => value,
        })
    }

    /// The precommit this node casts where an honest one would cast `value`.
    pub fn precommit(
        &self,
        height: Height,
        round: Round,
        value: NilOrVal<BlockHash>,
        address: Address,
    ) -> NilOrVal<BlockHash> {
        if address != self.own || value == NilOrVal::Nil {
            return value;
        }
        self.decide((height.0, round.as_i64(), false, option(&value)), || {
            let mut rng = self.rng.lock().expect("vote faults rng");
            if self.force_precommit_nil.fires(height, round, &mut rng) {
                warn!(%height, %round, "BYZANTINE: precommitting nil instead of a value");
                NilOrVal::Nil
            } else {
                value
            }
        })
    }

    fn decide(
        &self,
        key: VoteAsked,
        decide: impl FnOnce() -> NilOrVal<BlockHash>,
    ) -> NilOrVal<BlockHash> {
        let mut decided = self.decided.lock().expect("vote decisions");
        if let Some(vote) = decided.get(&key) {
            return *vote;
        }
        let vote = decide();
        decided.insert(key, vote);
        while decided.len() > VOTE_DECISIONS_KEPT_MAX {
            decided.pop_first();
        }
        vote
    }
}

/// A kind of lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LieKind {
    /// A block carrying a transaction whose signature does not verify.
    BadSignature,
    /// A block carrying a well-signed transaction the rules refuse.
    RuleViolation,
    /// A block far ahead of the clock.
    FutureTime,
    /// A block older than its parent.
    TimeBeforeParent,
    /// A second, valid block offered for a height and round this node proposed in.
    ConflictingBlock,
}

/// A block this node lied with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lie {
    /// Height.
    pub height: u64,
    /// Round.
    pub round: u32,
    /// What was wrong with it.
    pub kinds: Vec<LieKind>,
    /// Its hash.
    pub block: Digest,
}

/// A second block for a height and round, ready to stream if the proxy equivocates.
#[derive(Clone, Debug)]
struct ConflictingBlock {
    height: Height,
    round: Round,
    hash: BlockHash,
    bytes: Bytes,
}

/// How this validator lies: its faults, its random streams, and the lies it told.
pub struct Liar {
    config: FaultConfig,
    node_key: Arc<SigningKey>,
    organisation: PartyId,
    /// The vote faults, shared with the consensus context.
    pub votes: Arc<VoteFaults>,
    rng: Mutex<StdRng>,
    /// Conflicting blocks by the block they conflict with.
    conflicting: Mutex<HashMap<BlockHash, ConflictingBlock>>,
    to_stream: mpsc::Sender<ConflictingBlock>,
    to_stream_rx: Mutex<Option<mpsc::Receiver<ConflictingBlock>>>,
    lies: Mutex<Vec<Lie>>,
}

impl std::fmt::Debug for Liar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liar")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Liar {
    /// A liar with node key `node_key`, running a validator of `organisation`.
    pub fn new(
        config: &FaultConfig,
        node_key: Arc<SigningKey>,
        organisation: PartyId,
    ) -> Result<Arc<Liar>> {
        config
            .validate()
            .map_err(|problem| anyhow::anyhow!("[byzantine]: {problem}"))?;
        engine_config(config)
            .validate()
            .map_err(|error| anyhow::anyhow!("[byzantine] refused by Malachite: {error}"))?;
        let own = Address::from(node_key.public_key());
        let (to_stream, to_stream_rx) = mpsc::channel(CONFLICTING_STREAMS_QUEUED_MAX);
        warn!(?config, "BYZANTINE: this validator is built to lie");
        Ok(Arc::new(Liar {
            config: config.clone(),
            node_key,
            organisation,
            votes: Arc::new(VoteFaults::new(config, own)),
            rng: Mutex::new(make_rng(stream_seed(config, 3))),
            conflicting: Mutex::new(HashMap::new()),
            to_stream,
            to_stream_rx: Mutex::new(Some(to_stream_rx)),
            lies: Mutex::new(Vec::new()),
        }))
    }

    /// The lies told so far, oldest first.
    pub fn lies(&self) -> Vec<Lie> {
        self.lies.lock().expect("lies").clone()
    }

    fn told(&self, lie: Lie) {
        warn!(?lie, "BYZANTINE: lying");
        let mut lies = self.lies.lock().expect("lies");
        if lies.len() < LIES_KEPT_MAX {
            lies.push(lie);
        }
    }

    /// Which bad-proposal faults fire for a height and round, evaluated in a fixed order so a
    /// seeded run is reproducible.
    fn bad_proposal_kinds(&self, height: Height, round: Round) -> Vec<LieKind> {
        let mut rng = self.rng.lock().expect("liar rng");
        [
            (&self.config.propose_bad_signature, LieKind::BadSignature),
            (&self.config.propose_rule_violation, LieKind::RuleViolation),
            (&self.config.propose_future_time, LieKind::FutureTime),
            (
                &self.config.propose_time_before_parent,
                LieKind::TimeBeforeParent,
            ),
        ]
        .into_iter()
        .filter(|(trigger, _)| engine_trigger(trigger).fires(height, round, &mut rng))
        .map(|(_, kind)| kind)
        .collect()
    }

    /// A transaction in which the node key attests evidence for the node's organisation. The
    /// signature is good, but only the organisation's own key may sign for it, so the rules
    /// refuse it; with `break_signature`, its signature does not verify at all.
    fn forged_tx(&self, chain_id: &str, height: Height, break_signature: bool) -> SignedTx {
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&Digest::sha256(&height.0.to_be_bytes()).as_bytes()[..16]);
        let mut tx = SignedTx::unsigned(TxBody {
            chain_id: chain_id.to_owned(),
            salt,
            valid_until: height.0 + 10,
            action: Action::AttestEvidence {
                attestor: self.organisation.clone(),
                evidence_hash: Digest::sha256(format!("forged at height {height}").as_bytes()),
                kind: EvidenceKind::Document,
                case_ref: None,
                related_asset: None,
            },
        });
        tx.sign(&self.node_key);
        if break_signature {
            let Signature::Ed25519(bytes) = &mut tx.signatures[0].signature;
            bytes[0] ^= 0x01;
        }
        tx
    }

    /// The fixes the engine's proxy needs: a conflicting block for a proposal (streamed as it is
    /// named), and a conflicting value for a vote.
    fn conflicting_fns(
        self: &Arc<Liar>,
    ) -> (
        ConflictingValueFn<IpledgerContext>,
        ConflictingVoteValueFn<IpledgerContext>,
    ) {
        let liar = self.clone();
        let for_proposal: ConflictingValueFn<IpledgerContext> = Box::new(move |original| {
            let prepared = liar
                .conflicting
                .lock()
                .expect("conflicting blocks")
                .get(original)
                .cloned();
            match prepared {
                Some(block) => {
                    let hash = block.hash;
                    if liar.to_stream.try_send(block).is_err() {
                        warn!("BYZANTINE: conflicting block queue full; its proposal goes without parts");
                    }
                    hash
                }
                None => {
                    warn!(%original, "BYZANTINE: no conflicting block prepared; proposing a made-up hash");
                    made_up(Some(original))
                }
            }
        });
        let liar = self.clone();
        let for_vote: ConflictingVoteValueFn<IpledgerContext> = Box::new(move |original| {
            let conflicting = liar.conflicting.lock().expect("conflicting blocks");
            match original.and_then(|hash| conflicting.get(hash)) {
                Some(block) => block.hash,
                None => made_up(original),
            }
        });
        (for_proposal, for_vote)
    }
}

/// A hash no block has, different from `original`.
fn made_up(original: Option<&BlockHash>) -> BlockHash {
    let mut bytes = b"ipledger/byzantine/made-up".to_vec();
    if let Some(original) = original {
        bytes.extend_from_slice(&original.0);
    }
    BlockHash::from(Digest::sha256(&bytes))
}

/// Replaces the block this validator was about to propose by a bad one when a bad-proposal
/// fault fires; otherwise returns it unchanged. The bad block carries no mempool transactions.
pub fn bad_proposal(
    app: &ConsensusApp,
    height: Height,
    round: Round,
    honest: ExecutedBlock,
) -> Result<ExecutedBlock> {
    let Some(liar) = &app.liar else {
        return Ok(honest);
    };
    let kinds = liar.bad_proposal_kinds(height, round);
    if kinds.is_empty() {
        return Ok(honest);
    }
    let (_, parent_time) = app.parent(height)?;
    let now = (app.clock_ms)();
    let time_ms = match kinds.contains(&LieKind::FutureTime) {
        true => now + FUTURE_TIME_SKEWS * app.genesis.consensus.clock_skew_max_ms,
        false => honest.block.header.time_ms,
    };
    let mut lie = build_empty(app, height, time_ms)?;
    let chain_id = app.genesis.chain_id.as_str();
    if kinds.contains(&LieKind::RuleViolation) {
        lie.block.txs.push(liar.forged_tx(chain_id, height, false));
    }
    if kinds.contains(&LieKind::BadSignature) {
        lie.block.txs.push(liar.forged_tx(chain_id, height, true));
    }
    lie.block.header.tx_count = lie.block.txs.len() as u32;
    if kinds.contains(&LieKind::TimeBeforeParent) {
        lie.block.header.time_ms = parent_time.saturating_sub(1);
    }
    liar.told(Lie {
        height: height.0,
        round: super::context::defined_round(round),
        kinds,
        block: lie.block.header.hash(),
    });
    Ok(lie)
}

/// A valid block with no transactions at `time_ms` on the committed state.
fn build_empty(app: &ConsensusApp, height: Height, time_ms: u64) -> Result<ExecutedBlock> {
    let (parent, _) = app.parent(height)?;
    let head = app.store.head_height()?;
    let snapshot = app.store.snapshot()?;
    let state = snapshot.state(head);
    let builder = BlockBuilder::new(
        &state,
        BlockContext {
            height: height.0,
            time_ms,
        },
    )?;
    Ok(builder.finish(&state, app.signer.address().public_key(), parent)?)
}

/// After this validator proposed `value`: amnesia remembers it, and when proposals may be
/// equivocated, a conflicting block (no transactions, a later time) is built, held
/// (so this node can commit it should it be decided) and kept ready for the proxy.
pub fn proposed(
    app: &mut ConsensusApp,
    height: Height,
    round: Round,
    value: BlockHash,
) -> Result<()> {
    let Some(liar) = app.liar.clone() else {
        return Ok(());
    };
    liar.votes.saw_proposal(height, round, value);
    if liar.config.equivocate_proposals.is_never() {
        return Ok(());
    }
    // The proposal's time was the clock (or just after the parent) when it was built; the
    // clock has not gone back since, so this time is later and the block differs.
    let (_, parent_time) = app.parent(height)?;
    let time_ms = (app.clock_ms)().max(parent_time + 1) + 1;
    let executed = build_empty(app, height, time_ms)?;
    let hash = BlockHash::from(executed.block.header.hash());
    if hash == value {
        return Ok(());
    }
    let bytes = Bytes::from(executed.block.encode());
    app.hold(height, hash, executed, bytes.clone(), false);
    let mut conflicting = liar.conflicting.lock().expect("conflicting blocks");
    conflicting.retain(|_, block| block.height.0 + CONFLICTING_HEIGHTS_KEPT > height.0);
    conflicting.insert(
        value,
        ConflictingBlock {
            height,
            round,
            hash,
            bytes,
        },
    );
    drop(conflicting);
    liar.told(Lie {
        height: height.0,
        round: super::context::defined_round(round),
        kinds: vec![LieKind::ConflictingBlock],
        block: hash.digest(),
    });
    Ok(())
}

/// Streams the parts of each conflicting block the proxy proposes, on a stream id of its own
/// (receivers keep one stream per sender and id), until the engine stops.
pub fn stream_conflicting_blocks(
    liar: &Liar,
    signer: Arc<ConsensusSigner>,
    chain_id: Arc<str>,
    network: mpsc::Sender<NetworkMsg<IpledgerContext>>,
) -> Option<JoinHandle<()>> {
    let mut blocks = liar.to_stream_rx.lock().expect("stream queue").take()?;
    Some(tokio::spawn(async move {
        while let Some(block) = blocks.recv().await {
            let mut id = stream_id(block.height, block.round).to_bytes().to_vec();
            id.push(0xB1);
            let stream = ProposalStream {
                chain_id: &chain_id,
                signer: &signer,
                id: StreamId::new(Bytes::from(id)),
                height: block.height,
                round: block.round,
                pol_round: Round::Nil,
            };
            for message in stream.messages(&block.bytes) {
                if network
                    .send(NetworkMsg::PublishProposalPart(message))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }))
}

/// Builds a lying validator's engine: the runner's engine with Malachite's Byzantine proxy in
/// front of the network, then starts streaming conflicting blocks. `signer` signs the
/// conflicting votes and proposals.
pub async fn build_engine<Config: NodeConfig>(
    liar: &Arc<Liar>,
    signer: Arc<ConsensusSigner>,
    engine: EngineParts<Config>,
) -> Result<(
    Channels<IpledgerContext>,
    EngineHandle,
    Option<JoinHandle<()>>,
)> {
    let EngineParts {
        ctx,
        config,
        wal,
        identity,
        consensus,
    } = engine;
    let chain_id = ctx.chain_id.clone();
    let (conflicting_value_fn, conflicting_vote_value_fn) = liar.conflicting_fns();
    let proxy = ByzantineContext {
        identity,
        codec: BorshCodec,
        config: engine_config(&liar.config),
        signer: Box::new(ConsensusSigner::new(
            liar.node_key.clone(),
            chain_id.clone(),
        )),
        address: signer.address(),
        conflicting_value_fn: Some(conflicting_value_fn),
        conflicting_vote_value_fn: Some(conflicting_vote_value_fn),
    };
    let (channels, handle) = EngineBuilder::new(ctx, config)
        .with_default_wal(wal)
        .with_byzantine_network(proxy)
        .await
        .map_err(|error| anyhow::anyhow!("starting the Byzantine network proxy: {error:?}"))?
        .with_default_consensus(consensus)
        .with_default_sync(SyncContext::new(BorshCodec))
        .with_default_request(RequestContext::new(ENGINE_REQUESTS_QUEUED_MAX))
        .build()
        .await
        .map_err(|error| anyhow::anyhow!("starting the consensus engine: {error:?}"))?;
    let streaming = stream_conflicting_blocks(liar, signer, chain_id, channels.network.clone());
    Ok((channels, handle, streaming))
}

/// The organisation a validator's node key runs for, from the genesis.
pub fn organisation_of(
    genesis: &ledger_core::genesis::Genesis,
    node_key: &SigningKey,
) -> Result<PartyId> {
    let key = node_key.public_key();
    genesis
        .validators
        .iter()
        .find(|validator| validator.key == key)
        .map(|validator| validator.organisation.clone())
        .with_context(|| format!("[byzantine]: node key {key} is not a genesis validator"))
}
