//! A lying member: one of four validators is built with the `byzantine` feature and configured
//! (its `config.toml`'s `[byzantine]` section) to lie; the three honest ones stay safe (identical
//! blocks) and live (new heights within a deadline), the double votes they see are kept as
//! evidence, and an organisation's report of them (`ipledger report-misbehaviour`) is recorded on
//! the ledger.
//!
//! Needs the feature: `scripts/test.sh` (the README's test command) runs
//! `cargo test -p ipledger-node --features byzantine --test network_byzantine`.
//!
//! Each test starts its own network, made by `ipledger-genesis local` in a temporary directory
//! with ports from the OS, and started as `ipledger-node run` starts a node (its config file);
//! the tests in this file run one at a time (a shared lock). Conditions are polled with
//! generous deadlines, never slept on.

#![cfg(feature = "byzantine")]

use clap::Parser as _;
use ipledger_genesis::{
    create_local, read_genesis, write_genesis, ByzantineConfig, LocalNetwork, LocalOptions,
    NodeConfig, Trigger,
};
use ipledger_node::consensus::building::ProposalBudget;
use ipledger_node::consensus::byzantine::{Liar, Lie, LieKind};
use ipledger_node::consensus::misbehaviour::Misbehaviour;
use ipledger_node::service::{start_from_config, RunningNode};
use ledger_core::crypto::PublicKey;
use ledger_core::state::{MisbehaviourRecord, Overlay, StateKey};
use ledger_core::vote::SignedVote;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Networks in this file run one at a time.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Generous: a loaded 2-core machine may be slow, and a condition is polled, never slept on.
const DEADLINE: Duration = Duration::from_secs(180);
/// The organisation whose validator lies.
const LIAR: &str = "bank-b";
/// The organisation that reports the liar.
const REPORTER: &str = "bank-a";

/// Set `IPLEDGER_TEST_LOG=info` (or a filter) to see the nodes' logs.
fn init_logs() {
    if let Ok(filter) = std::env::var("IPLEDGER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

struct Network {
    _dir: tempfile::TempDir,
    local: LocalNetwork,
    nodes: Vec<RunningNode>,
    liar: usize,
    started: Instant,
}

impl Network {
    /// A local network of four validators with fast consensus timing, whose [`LIAR`] validator
    /// lies as `byzantine` says.
    async fn start(byzantine: ByzantineConfig) -> Network {
        Network::start_with(|_| byzantine).await
    }

    /// [`Network::start`], the liar's faults made knowing its place among the validators sorted
    /// by key (the proposer of height `h`, round `r` is the one at `(h + r) % 4`).
    async fn start_with(byzantine: impl FnOnce(usize) -> ByzantineConfig) -> Network {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let local =
            create_local(&LocalOptions::new(dir.path().join("net"))).expect("local network");
        let mut genesis = read_genesis(&local.genesis_path).expect("genesis");
        genesis.consensus.block_interval_ms = 200;
        genesis.consensus.propose_timeout_ms = 1_500;
        genesis.consensus.vote_timeout_ms = 500;
        write_genesis(&local.genesis_path, &genesis).expect("genesis written");
        let liar = local
            .nodes
            .iter()
            .position(|node| node.name == LIAR)
            .expect("the liar's node");
        let mut keys: Vec<PublicKey> = genesis.validators.iter().map(|v| v.key).collect();
        keys.sort();
        let place = keys
            .iter()
            .position(|key| *key == local.nodes[liar].public_key)
            .expect("the liar validates");
        let byzantine = byzantine(place);
        let mut nodes = Vec::new();
        for (index, node) in local.nodes.iter().enumerate() {
            let mut config = NodeConfig::load(&node.config_path).expect("config loads");
            write_genesis(config.genesis_path(), &genesis).expect("node's genesis written");
            config.consensus = (&genesis.consensus).into();
            if index == liar {
                config.byzantine = Some(byzantine.clone());
            }
            config.save(&node.config_path).expect("config saved");
            let config = NodeConfig::load(&node.config_path).expect("config reloads");
            assert_eq!(config.byzantine.is_some(), index == liar);
            nodes.push(start_from_config(&config).await.expect("node starts"));
        }
        Network {
            _dir: dir,
            local,
            nodes,
            liar,
            started: Instant::now(),
        }
    }

    fn honest(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|i| *i != self.liar).collect()
    }

    fn liar(&self) -> Arc<Liar> {
        self.nodes[self.liar]
            .node
            .liar
            .clone()
            .expect("the liar lies")
    }

    fn liar_key(&self) -> PublicKey {
        self.local.nodes[self.liar].public_key
    }

    fn height(&self, index: usize) -> u64 {
        self.nodes[index]
            .node
            .store
            .head_height()
            .expect("store readable")
    }

    /// Waits until every node in `indices` has committed `height`.
    async fn wait_for_height(&self, indices: &[usize], height: u64) {
        self.wait_until(&format!("nodes {indices:?} reach height {height}"), || {
            indices.iter().all(|i| self.height(*i) >= height)
        })
        .await;
    }

    async fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            let heights: Vec<u64> = (0..self.nodes.len()).map(|i| self.height(i)).collect();
            assert!(
                started.elapsed() < DEADLINE,
                "not within {DEADLINE:?}: {what} (heights {heights:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Safety: the nodes in `indices` hold byte-identical blocks up to `height`, and the liar
    /// holds the same blocks as far as it got.
    fn assert_same_blocks(&self, indices: &[usize], height: u64) {
        for h in 1..=height {
            let block = |i: usize| {
                self.nodes[i]
                    .node
                    .store
                    .block(h)
                    .expect("readable")
                    .map(|block| block.encode())
            };
            let first = block(indices[0]).expect("committed");
            for i in indices.iter().copied().chain([self.liar]) {
                match block(i) {
                    Some(bytes) => assert_eq!(bytes, first, "node {i} differs at height {h}"),
                    None => assert_eq!(i, self.liar, "honest node {i} lacks block {h}"),
                }
            }
        }
    }

    /// The committed block hash at `height` (of the first honest node).
    fn committed_hash(&self, height: u64) -> ledger_core::crypto::Digest {
        let node = &self.nodes[self.honest()[0]].node;
        node.store
            .block(height)
            .expect("readable")
            .expect("committed")
            .header
            .hash()
    }

    /// The double votes of the liar that `index` kept as evidence.
    fn liars_double_votes(&self, index: usize) -> Vec<(SignedVote, SignedVote)> {
        let key = self.liar_key();
        self.nodes[index]
            .node
            .misbehaviour
            .double_votes()
            .into_iter()
            .filter(|(first, _)| first.validator == key)
            .collect()
    }

    /// Runs `ipledger ARGS` against honest node `index` and returns its JSON answer.
    async fn cli(&self, index: usize, args: &[&str]) -> serde_json::Value {
        let mut line: Vec<String> = vec![
            "ipledger".into(),
            "--json".into(),
            "--node".into(),
            format!("http://{}", self.local.nodes[index].http),
            "--genesis".into(),
            self.local.genesis_path.display().to_string(),
        ];
        line.extend(args.iter().map(|arg| arg.to_string()));
        let cli = ipledger_client::cli::Cli::try_parse_from(&line).expect("a valid command line");
        let output = tokio::task::spawn_blocking(move || ipledger_client::run(cli))
            .await
            .expect("the command ran");
        match output {
            Ok(output) => output.json,
            Err(error) => panic!("ipledger {args:?} failed: {error}"),
        }
    }

    async fn stop(self) {
        let liar = self.liar;
        for (index, running) in self.nodes.into_iter().enumerate() {
            assert!(
                !running.node.app.is_finished(),
                "node {index} (liar: {}) stopped by itself",
                index == liar
            );
            running.stop().await.expect("node stops cleanly");
        }
    }
}

/// A network's figures, printed for docs/RELIABILITY.md (`-- --nocapture` shows them).
fn report(scenario: &str, network: &Network, height: u64, extra: &str) {
    println!(
        "[{scenario}] height {height} after {:.1} s; {extra}",
        network.started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_equivocating_votes_and_proposals_is_recorded_and_the_chain_goes_on() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start(ByzantineConfig {
        seed: Some(7),
        equivocate_votes: Trigger::Always,
        equivocate_proposals: Trigger::Always,
        ..ByzantineConfig::default()
    })
    .await;
    let honest = network.honest();
    // Liveness: twelve heights, each with a double vote of the liar in every step.
    const HEIGHTS: u64 = 12;
    network.wait_for_height(&honest, HEIGHTS).await;
    network.assert_same_blocks(&honest, HEIGHTS);
    let reached = network.started.elapsed();
    // Evidence: every honest validator saw the liar's double votes; some saw its double
    // proposals (two different, real blocks, both streamed).
    network
        .wait_until("every honest node keeps a double vote of the liar", || {
            honest
                .iter()
                .all(|i| !network.liars_double_votes(*i).is_empty())
        })
        .await;
    network
        .wait_until("an honest node keeps a double proposal of the liar", || {
            honest.iter().any(|i| {
                network.nodes[*i].node.misbehaviour.records().iter().any(|r| {
                    matches!(r.misbehaviour, Misbehaviour::DoubleProposal { proposer, .. } if proposer == network.liar_key())
                })
            })
        })
        .await;
    let conflicting: Vec<Lie> = network
        .liar()
        .lies()
        .into_iter()
        .filter(|lie| lie.kinds == [LieKind::ConflictingBlock])
        .collect();
    assert!(
        !conflicting.is_empty(),
        "the liar built no conflicting block"
    );
    // An honest organisation reports what its node saw; the ledger records each double vote.
    let reporter = honest[0];
    let evidence = network.nodes[reporter].node.misbehaviour.path().to_owned();
    let key = network
        .local
        .organisations
        .iter()
        .find(|org| org.party.0 == REPORTER)
        .expect("the reporter")
        .key_path
        .clone();
    let answer = network
        .cli(
            reporter,
            &[
                "report-misbehaviour",
                "--evidence",
                &evidence.display().to_string(),
                "--key",
                &key.display().to_string(),
            ],
        )
        .await;
    let reports = answer["reports"].as_array().expect("reports").clone();
    assert!(!reports.is_empty(), "{answer}");
    for report in &reports {
        assert_eq!(report["status"], "recorded", "{answer}");
        assert_eq!(report["reporter"], REPORTER, "{answer}");
        assert_eq!(report["organisation"], LIAR, "{answer}");
    }
    // The state of every honest node holds each record.
    let node = &network.nodes[honest[1]].node;
    let committed_at = reports
        .iter()
        .map(|r| r["recorded_height"].as_u64().expect("height"))
        .max()
        .expect("one report");
    network.wait_for_height(&honest, committed_at).await;
    for report in &reports {
        let field = |name: &str| report[name].clone();
        let key = StateKey::Misbehaviour {
            validator: serde_json::from_value(field("validator")).expect("a key"),
            height: field("height").as_u64().expect("a height"),
            round: field("round").as_u64().expect("a round") as u32,
            vote_type: serde_json::from_value(field("vote_type")).expect("a vote type"),
        };
        let snapshot = node.store.snapshot().expect("snapshot");
        let state = snapshot.state(node.store.head_height().expect("head"));
        let record: Option<MisbehaviourRecord> = Overlay::new(&state).get(&key).expect("readable");
        let record = record.expect("the double vote is on the ledger");
        assert_eq!(record.organisation.0, LIAR);
    }
    // Reporting again (another honest node's file) records nothing twice.
    let other = honest[2];
    let evidence = network.nodes[other].node.misbehaviour.path().to_owned();
    let again = network
        .cli(
            other,
            &[
                "report-misbehaviour",
                "--evidence",
                &evidence.display().to_string(),
                "--key",
                &key.display().to_string(),
            ],
        )
        .await;
    let already = again["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .filter(|r| r["status"] == "already_recorded")
        .count();
    let double_votes = network.liars_double_votes(reporter);
    let double_proposals: Vec<usize> = honest
        .iter()
        .map(|i| {
            let records = network.nodes[*i].node.misbehaviour.records();
            records
                .iter()
                .filter(|r| matches!(r.misbehaviour, Misbehaviour::DoubleProposal { .. }))
                .count()
        })
        .collect();
    let height = honest
        .iter()
        .map(|i| network.height(*i))
        .min()
        .expect("honest");
    network.assert_same_blocks(&honest, height);
    report(
        "equivocation",
        &network,
        height,
        &format!(
            "height {HEIGHTS} reached in {:.1} s; {} double votes kept by the reporter's node, \
             {} reported and recorded; {} conflicting blocks built, double proposals kept by \
             the honest nodes: {double_proposals:?}; second report: {} of {} already recorded",
            reached.as_secs_f64(),
            double_votes.len(),
            reports.len(),
            conflicting.len(),
            already,
            again["reports"].as_array().map_or(0, Vec::len),
        ),
    );
    network.stop().await;
}

/// The first `count` heights from 2 at which validator `index` (of `n`, sorted by key) proposes
/// in round 0: the proposer of height `h`, round `r` is the validator at `(h + r) % n`.
fn round_zero_heights(index: usize, n: usize, count: usize) -> Vec<u64> {
    (2u64..)
        .filter(|h| (*h % n as u64) as usize == index)
        .take(count)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_proposals_of_a_validator_are_refused_and_never_committed() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    // One fault at each of the first four heights at which the liar proposes in round 0.
    let mut lies_at = Vec::new();
    let network = Network::start_with(|place| {
        lies_at = round_zero_heights(place, 4, 4);
        let at = |i: usize| Trigger::AtHeights {
            heights: vec![lies_at[i]],
        };
        ByzantineConfig {
            propose_bad_signature: at(0),
            propose_rule_violation: at(1),
            propose_future_time: at(2),
            propose_time_before_parent: at(3),
            ..ByzantineConfig::default()
        }
    })
    .await;
    let honest = network.honest();
    let last = *lies_at.last().expect("four heights") + 2;
    network.wait_for_height(&honest, last).await;
    network.assert_same_blocks(&honest, last);
    let lies = network.liar().lies();
    let kinds = [
        LieKind::BadSignature,
        LieKind::RuleViolation,
        LieKind::FutureTime,
        LieKind::TimeBeforeParent,
    ];
    for (height, kind) in lies_at.iter().zip(kinds) {
        let told: Vec<&Lie> = lies.iter().filter(|lie| lie.height == *height).collect();
        assert!(
            told.iter().any(|lie| lie.kinds == [kind]),
            "no {kind:?} proposal at height {height}: {lies:?}"
        );
        for lie in told {
            assert_ne!(
                network.committed_hash(*height),
                lie.block,
                "a {kind:?} block was committed at height {height}"
            );
        }
        let committed = network.nodes[honest[0]]
            .node
            .store
            .block(*height)
            .expect("readable")
            .expect("committed");
        assert_ne!(committed.header.proposer, network.liar_key());
    }
    // Every committed block is sound: time strictly increasing, every signature valid.
    let store = &network.nodes[honest[0]].node.store;
    let mut previous_time = 0;
    for height in 1..=last {
        let block = store.block(height).expect("readable").expect("committed");
        assert!(
            block.header.time_ms > previous_time,
            "time at height {height}"
        );
        previous_time = block.header.time_ms;
        for tx in &block.txs {
            tx.verify_signatures()
                .expect("every committed signature verifies");
        }
    }
    let refused: Vec<u64> = honest
        .iter()
        .map(|i| {
            network.nodes[*i]
                .node
                .network
                .proposal_checks
                .refused
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .collect();
    assert!(
        refused.iter().sum::<u64>() >= kinds.len() as u64,
        "honest nodes refused {refused:?} proposals"
    );
    // The liar learnt from its own refused proposals: four halvings of its proposal budget
    // (more if a proposal of its failed besides), none of them won back, since the empty
    // blocks it proposed in between never filled its budget.
    let genesis = read_genesis(&network.local.genesis_path).expect("genesis");
    let block_txs_max = u64::from(genesis.params.block_txs_max);
    let liar_budget = network.nodes[network.liar]
        .node
        .network
        .proposal_checks
        .budget_txs
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        liar_budget <= block_txs_max / 16 && liar_budget >= ProposalBudget::FLOOR_TXS as u64,
        "the liar's proposal budget is {liar_budget} after four refused proposals (chain limit {block_txs_max})"
    );
    report(
        "bad proposals",
        &network,
        last,
        &format!("lies at heights {lies_at:?}; {} lies told; proposals refused by the honest nodes: {refused:?}", lies.len()),
    );
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_validator_that_drops_messages_ignores_locks_and_precommits_nil_does_not_stop_the_chain()
{
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start(ByzantineConfig {
        seed: Some(11),
        drop_votes: Trigger::Random { probability: 0.3 },
        drop_proposals: Trigger::Random { probability: 0.5 },
        ignore_locks: Trigger::Always,
        force_precommit_nil: Trigger::Always,
        drop_inbound_proposals: Trigger::AtRounds { rounds: vec![0] },
        ..ByzantineConfig::default()
    })
    .await;
    let honest = network.honest();
    const HEIGHTS: u64 = 12;
    network.wait_for_height(&honest, HEIGHTS).await;
    network.assert_same_blocks(&honest, HEIGHTS);
    // The liar never signed two conflicting votes, and nobody says it did.
    for index in honest.iter().copied() {
        assert!(
            network.liars_double_votes(index).is_empty(),
            "node {index} accuses the liar of a double vote it did not cast"
        );
    }
    // Its forced nil precommits never count towards a commit: it signs no certificate.
    let store = &network.nodes[honest[0]].node.store;
    let mut signed_by_liar = 0;
    for height in 1..HEIGHTS {
        let certificate = store
            .certificate(height)
            .expect("readable")
            .expect("certified");
        signed_by_liar += certificate
            .signatures
            .iter()
            .filter(|s| s.validator == network.liar_key())
            .count();
    }
    assert_eq!(signed_by_liar, 0, "the liar precommitted a block");
    report(
        "silence and amnesia",
        &network,
        HEIGHTS,
        "the liar signed none of the commit certificates",
    );
    network.stop().await;
}
