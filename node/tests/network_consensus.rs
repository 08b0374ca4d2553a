//! Four validators on loopback agree on every block, commit transactions submitted to any of
//! them, and a stopped validator catches up when restarted.
//!
//! Each test starts its own network on ports from the OS; the tests in this file run one at a
//! time (a shared lock), so a 2-core CI machine runs one network at a time.

use ipledger_genesis::StoreConfig;
use ipledger_node::admission;
use ipledger_node::consensus::app::ProposalChecks;
use ipledger_node::consensus::building::ProposalBudget;
use ipledger_node::runner::{start, NodeHandle, NodeSetup};
use ipledger_node::store::{prunable_through, STATE_PRUNE_BATCH_VERSIONS, STATE_VERSIONS_KEPT};
use ledger_core::genesis::Genesis;
use ledger_core::genesis::Validator;
use ledger_core::testkit::{test_genesis, test_key, TEST_ORGANISATIONS};
use ledger_core::tx::{Action, GovernanceAction, SignedTx, TxId};
use ledger_core::types::Role;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Networks in this file run one at a time.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Generous: a loaded 2-core machine may be slow, and a condition is polled, never slept on.
const DEADLINE: Duration = Duration::from_secs(120);

/// A port free for both TCP and UDP (consensus and transaction gossip use one each), outside the
/// kernel's ephemeral range so that no outgoing socket takes it before its node binds it.
fn free_port() -> u16 {
    let localhost = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    ipledger_genesis::ports::free_ports(localhost, 1).expect("a free port")[0]
}

/// Set `IPLEDGER_TEST_LOG=info` (or debug, or a filter) to see the nodes' logs.
fn init_logs() {
    if let Ok(filter) = std::env::var("IPLEDGER_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// Waits until `done` holds; past [`DEADLINE`], fails with what `what` says then.
async fn wait_until(what: impl Fn() -> String, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < DEADLINE, "{}", what());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A test genesis whose time is now, with fast consensus timing.
fn network_genesis() -> Genesis {
    let mut genesis = test_genesis(4);
    genesis.genesis_time_ms = now_ms();
    genesis.consensus.block_interval_ms = 200;
    genesis.consensus.propose_timeout_ms = 1_500;
    genesis.consensus.vote_timeout_ms = 500;
    genesis
}

struct Network {
    genesis: Arc<Genesis>,
    dirs: Vec<tempfile::TempDir>,
    ports: Vec<u16>,
    nodes: Vec<Option<NodeHandle>>,
    /// Peers every validator's config names besides the other validators (nodes the ledger
    /// may admit later).
    extra_peers: Vec<(String, ledger_core::crypto::PublicKey)>,
    /// Pairs of validators that do not name each other as peers: no link between them.
    unlinked: Vec<(usize, usize)>,
}

impl Network {
    async fn start() -> Network {
        Network::start_some(&[0, 1, 2, 3]).await
    }

    /// A network of four validators of which only `running` start now.
    async fn start_some(running: &[usize]) -> Network {
        Network::start_with(network_genesis(), running).await
    }

    /// A network of four validators on `genesis`, of which only `running` start now.
    async fn start_with(genesis: Genesis, running: &[usize]) -> Network {
        init_logs();
        let genesis = Arc::new(genesis);
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..4)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut network = Network {
            genesis,
            dirs,
            ports,
            nodes: (0..4).map(|_| None).collect(),
            extra_peers: Vec::new(),
            unlinked: Vec::new(),
        };
        for index in running {
            network.start_node(*index).await;
        }
        network
    }

    async fn start_node(&mut self, index: usize) {
        self.start_node_with_clock(index, Arc::new(now_ms)).await;
    }

    async fn start_node_with_clock(
        &mut self,
        index: usize,
        clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
    ) {
        let (name, _) = TEST_ORGANISATIONS[index];
        let setup = NodeSetup {
            // Unique per network: Malachite's metrics registry is global to the process, and two
            // nodes with one moniker in one process stall.
            moniker: format!("{name}-{}", self.ports[index]),
            genesis: self.genesis.clone(),
            node_key: Arc::new(test_key(&format!("{name}/node"))),
            data_dir: self.dirs[index].path().to_path_buf(),
            store_cache_bytes: StoreConfig::default().cache_bytes(),
            listen_addr: format!("/ip4/127.0.0.1/tcp/{}", self.ports[index]),
            peers: self
                .validator_peers()
                .into_iter()
                .enumerate()
                .filter(|(i, _)| {
                    *i != index
                        && !self.unlinked.contains(&(index, *i))
                        && !self.unlinked.contains(&(*i, index))
                })
                .map(|(_, peer)| peer)
                .chain(self.extra_peers.iter().cloned())
                .collect(),
            validator: true,
            clock_ms,
        };
        self.nodes[index] = Some(start(setup).await.expect("node starts"));
    }

    /// The HTTP API over running node `index`, as the node binary serves it.
    fn api(&self, index: usize) -> ipledger_node::api::ApiState {
        let node = self.node(index);
        ipledger_node::api::ApiState::new(
            node.store.clone(),
            self.genesis.clone(),
            node.mempool.clone(),
            node.committed.clone(),
            Arc::new(now_ms),
        )
        .with_network(node.network.clone())
    }

    /// The four validators' consensus addresses and node keys, in index order.
    fn validator_peers(&self) -> Vec<(String, ledger_core::crypto::PublicKey)> {
        (0..4)
            .map(|i| {
                let key = test_key(&format!("{}/node", TEST_ORGANISATIONS[i].0)).public_key();
                (format!("/ip4/127.0.0.1/tcp/{}", self.ports[i]), key)
            })
            .collect()
    }

    /// Starts a node that is not one of the four (its key `test_key("<name>/node")`), with the
    /// four as its peers; whether it is let in is the ledger's business.
    async fn start_guest(&self, name: &str, port: u16, dir: &tempfile::TempDir) -> NodeHandle {
        start(NodeSetup {
            moniker: format!("{name}-{port}"),
            genesis: self.genesis.clone(),
            node_key: Arc::new(test_key(&format!("{name}/node"))),
            data_dir: dir.path().to_path_buf(),
            store_cache_bytes: StoreConfig::default().cache_bytes(),
            listen_addr: format!("/ip4/127.0.0.1/tcp/{port}"),
            peers: self.validator_peers(),
            validator: true,
            clock_ms: Arc::new(now_ms),
        })
        .await
        .expect("the guest node starts")
    }

    fn node(&self, index: usize) -> &NodeHandle {
        self.nodes[index].as_ref().expect("node running")
    }

    /// One of the proposal counters, summed over the running nodes.
    fn proposal_checks_total(&self, counter: impl Fn(&ProposalChecks) -> &AtomicU64) -> u64 {
        self.nodes
            .iter()
            .flatten()
            .map(|node| counter(&node.network.proposal_checks).load(Ordering::Relaxed))
            .sum()
    }

    fn height(&self, index: usize) -> u64 {
        self.node(index)
            .store
            .head_height()
            .expect("store readable")
    }

    async fn wait_for_height(&self, indices: &[usize], height: u64) {
        wait_until(
            || {
                let heights: Vec<u64> = indices.iter().map(|i| self.height(*i)).collect();
                format!("nodes {indices:?} stuck at heights {heights:?}, waiting for {height}")
            },
            async || indices.iter().all(|i| self.height(*i) >= height),
        )
        .await;
    }

    /// Waits until each `(node, peers)` has that many gossip peers connected.
    async fn wait_for_gossip_peers(&self, wanted: &[(usize, usize)]) {
        for &(index, peers) in wanted {
            let connected = || {
                self.node(index)
                    .network
                    .gossip_status
                    .borrow()
                    .connected
                    .len()
            };
            wait_until(
                || format!("node {index} has {} gossip peers, not {peers}", connected()),
                async || connected() >= peers,
            )
            .await;
        }
    }

    fn assert_same_blocks(&self, indices: &[usize], up_to: u64) {
        for height in 1..=up_to {
            let blocks: Vec<_> = indices
                .iter()
                .map(|i| {
                    self.node(*i)
                        .store
                        .block(height)
                        .expect("readable")
                        .expect("committed")
                        .encode()
                })
                .collect();
            assert!(
                blocks.windows(2).all(|w| w[0] == w[1]),
                "nodes disagree on block {height}"
            );
        }
    }

    async fn stop(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_validators_commit_identical_blocks() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 5).await;
    network.assert_same_blocks(&[0, 1, 2, 3], 5);
    // Status: every node sees the three others as validator peers, for consensus and gossip.
    for index in 0..4 {
        let view = &network.node(index).network;
        let seen = Cell::new((None, 0));
        wait_until(
            || {
                let (peers, gossip) = seen.get();
                format!("node {index} sees {peers:?} validator peers and {gossip} gossip peers")
            },
            async || {
                let peers = view.engine_peers().await.map(|dump| {
                    dump.peers
                        .values()
                        .filter(|peer| peer.consensus_address.is_some())
                        .count()
                });
                let gossip = view.gossip_status.borrow().connected.len();
                seen.set((peers, gossip));
                peers == Some(3) && gossip == 3
            },
        )
        .await;
        assert!(
            !view.sync.borrow().syncing,
            "node {index} follows by consensus"
        );
        let checks = &view.proposal_checks;
        assert!(
            checks.streamed.load(Ordering::Relaxed) > 0,
            "node {index} executed no proposal while it streamed ({} in full)",
            checks.complete.load(Ordering::Relaxed)
        );
    }
    // Each node prunes replaced state-tree nodes behind its commits, a batch once the head
    // allows it and its own phase (up to a batch later) has passed.
    let first_batch = STATE_VERSIONS_KEPT + STATE_PRUNE_BATCH_VERSIONS;
    network.wait_for_height(&[0, 1, 2, 3], first_batch).await;
    for index in 0..4 {
        let store = &network.node(index).store;
        wait_until(
            || {
                let head = store.head_height().unwrap();
                format!("node {index} pruned nothing by height {head}")
            },
            async || store.pruned_through().unwrap() >= STATE_PRUNE_BATCH_VERSIONS,
        )
        .await;
        let pruned = store.pruned_through().unwrap();
        assert!(pruned <= prunable_through(store.head_height().unwrap()));
    }
    network.stop().await;
}

/// With more transactions waiting than a block holds, the proposer of each next height builds
/// its block while it commits the last one, over the decided block not yet stored. Every
/// transaction commits exactly once, in blocks that all validators agree on, that keep the block
/// limit, and whose time is no earlier than the submission of any transaction they hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_built_into_blocks_during_commits_and_each_transaction_commits_once() {
    const BLOCK_TXS_MAX: usize = 10;
    const BACKLOG: usize = 120;
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut genesis = network_genesis();
    genesis.params.block_txs_max = BLOCK_TXS_MAX as u32;
    let network = Network::start_with(genesis, &[0, 1, 2, 3]).await;
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    let valid_until = network.height(0) + 90;
    let txs = court_attestations(&network.genesis, "backlog", BACKLOG, valid_until);
    let mut submitted_ms = std::collections::HashMap::new();
    for (i, tx) in txs.iter().enumerate() {
        let now = now_ms();
        submitted_ms.insert(tx.id(), now);
        submit(network.node(i % 4), &network.genesis, tx.clone(), now);
    }
    let ids: Vec<TxId> = txs.iter().map(SignedTx::id).collect();
    let head = wait_for_commits(network.node(0), &ids).await;
    network.wait_for_height(&[0, 1, 2, 3], head).await;
    network.assert_same_blocks(&[0, 1, 2, 3], head);
    let mut committed = std::collections::HashSet::new();
    for height in 1..=head {
        let block = network
            .node(0)
            .store
            .block(height)
            .unwrap()
            .expect("committed");
        assert!(
            block.txs.len() <= BLOCK_TXS_MAX,
            "block {height} holds {}",
            block.txs.len()
        );
        for tx in &block.txs {
            assert!(committed.insert(tx.id()), "{} committed twice", tx.id());
            if let Some(submitted) = submitted_ms.get(&tx.id()) {
                assert!(
                    block.header.time_ms >= *submitted,
                    "block {height} is dated {} ms, before {} was submitted at {submitted} ms",
                    block.header.time_ms,
                    tx.id()
                );
            }
        }
    }
    assert!(txs.iter().all(|tx| committed.contains(&tx.id())));
    let built_early = network.proposal_checks_total(|checks| &checks.built_early);
    assert!(built_early > 0, "no proposal was built during a commit");
    // Early blocks are dated by each node's commit pace, so every node must have measured it.
    for index in 0..4 {
        let metrics = get_text(network.api(index), "/metrics").await;
        let pace = metric_total(&metrics, "ipledger_commit_microseconds_per_transaction");
        assert!(
            pace > 0,
            "node {index} shows no commit pace after {head} heights"
        );
        // Every commit has both parts, and redb's durable commit fsyncs, so neither total can
        // stay 0 over this many heights. The status reads the same totals, later, in
        // milliseconds.
        let status: serde_json::Value =
            serde_json::from_str(&get_text(network.api(index), "/v1/status").await)
                .expect("the status is JSON");
        for part in ["writing", "durable"] {
            let total = metric_total(
                &metrics,
                &format!("ipledger_commit_{part}_microseconds_total"),
            );
            assert!(
                total > 0,
                "node {index} shows no time in its commits' {part} part after {head} heights"
            );
            let status_ms = status["network"][format!("commit_{part}_ms")]
                .as_u64()
                .unwrap_or_else(|| panic!("node {index}'s status has no commit_{part}_ms"));
            assert!(
                status_ms >= total / 1_000,
                "node {index}'s status shows {status_ms} ms {part}, /metrics {total} µs before it"
            );
        }
    }
    network.stop().await;
}

/// When a height's first proposer is silent (its validator is down), the proposer of the next
/// round may fill half the block a first round may: a later round has less time left for the
/// others to check it (Malachite's timeouts grow per round, the backlog too), so a fresh
/// proposal halves per round rather than growing with the wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proposal_after_a_silent_round_holds_at_most_half_a_block() {
    const BLOCK_TXS_MAX: usize = 256;
    const BACKLOG: usize = 3_000;
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut genesis = network_genesis();
    genesis.params.block_txs_max = BLOCK_TXS_MAX as u32;
    // Validator 3 never starts: its turns as first proposer end in a later round.
    let running = [0, 1, 2];
    let network = Network::start_with(genesis, &running).await;
    commit_backlog(&network, &running, "silent-round", BACKLOG).await;
    let store = &network.node(0).store;
    let head = store.head_height().unwrap();
    // Proposers take turns over the validators sorted by key, offset by height and round, so a
    // block's proposer tells the round it was built for, modulo four: the earliest such round
    // bounds it (a block built in round 0 may still be decided in round 1, re-proposed after
    // a round whose precommits timed out).
    let mut keys: Vec<_> = network.genesis.validators.iter().map(|v| v.key).collect();
    keys.sort();
    // The chain's limit halved per round; a proposer's measured check pace can only lower it.
    let propose_timeout = Duration::from_millis(network.genesis.consensus.propose_timeout_ms);
    let mut full_in_round_one = 0;
    let mut by_round = std::collections::BTreeMap::<u32, Vec<usize>>::new();
    for height in 1..=head {
        let decided_round = store.certificate(height).unwrap().expect("certified").round;
        let block = store.block(height).unwrap().expect("committed");
        let turn = keys
            .iter()
            .position(|key| *key == block.header.proposer)
            .expect("a validator proposed it") as u64;
        let built_round = ((turn + 4 - height % 4) % 4) as u32;
        assert!(built_round <= decided_round, "block {height}");
        let txs = block.txs.len();
        by_round.entry(built_round).or_default().push(txs);
        let limit = ProposalBudget::new(BLOCK_TXS_MAX, propose_timeout).for_round(built_round);
        assert!(
            txs <= limit,
            "block {height}, built for round {built_round}, holds {txs} transactions (limit {limit})"
        );
        // Full at its round's limit, under a whole budget or a budget halved once (a loaded
        // machine may have failed one of that proposer's own first-round proposals).
        full_in_round_one +=
            usize::from(built_round == 1 && (txs == limit || txs == ProposalBudget::FLOOR_TXS));
    }
    // Not vacuous: some second-round proposal met a backlog larger than its limit.
    assert!(
        full_in_round_one > 0,
        "no block built for round 1 filled its limit; transactions per block by the round it \
         was built for: {by_round:?}"
    );
    network.stop().await;
}

/// Each validator times its checks of the other validators' proposals and holds its own to
/// what a check at that pace finishes in half the propose timeout. Under a backlog of blocks
/// large enough that checking them takes measurable time, every validator shows the pace it
/// measured on `/metrics`, and the budget it reports is within what that pace allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_are_held_to_what_the_measured_check_pace_allows() {
    const BLOCK_TXS_MAX: usize = 4_000;
    const BACKLOG: usize = 8_000;
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut genesis = network_genesis();
    genesis.params.block_txs_max = BLOCK_TXS_MAX as u32;
    // A short propose timeout: checks of a quarter of half of it (62 ms) count, which a block
    // of a thousand transactions takes on any machine.
    genesis.consensus.propose_timeout_ms = 500;
    let network = Network::start_with(genesis, &[0, 1, 2, 3]).await;
    let head = commit_backlog(&network, &[0, 1, 2, 3], "check-pace", BACKLOG).await;
    network.wait_for_height(&[0, 1, 2, 3], head).await;
    let check_time_max_us = network.genesis.consensus.propose_timeout_ms * 1_000 / 2;
    for index in 0..4 {
        let metrics = get_text(network.api(index), "/metrics").await;
        let check_us = metric_total(&metrics, "ipledger_check_microseconds_per_transaction");
        assert!(
            check_us > 0,
            "node {index} shows no check pace after {head} heights of a backlog"
        );
        let budget = metric_total(&metrics, "ipledger_proposal_budget_transactions");
        let allowed = (check_time_max_us / check_us).max(ProposalBudget::FLOOR_TXS as u64);
        assert!(
            budget <= allowed,
            "node {index}'s proposal budget is {budget}, but a check at its pace of {check_us} \
             us per transaction finishes only {allowed} in {check_time_max_us} us"
        );
    }
    network.stop().await;
}

/// Validators gossip without a mesh: every one dials every other and a publisher floods them
/// all, so nobody forwards and each validator receives each gossip batch once. gossipsub counts
/// the messages each node received with and without duplicates, and `/metrics` serves both; with
/// forwarding each batch of one small transaction would arrive three times. The same scrape
/// carries the consensus application's proposal metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gossip_batch_reaches_each_validator_once_and_metrics_count_it() {
    const TXS: usize = 40;
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    network
        .wait_for_gossip_peers(&[(0, 3), (1, 3), (2, 3), (3, 3)])
        .await;
    let valid_until = network.height(0) + 90;
    let txs = court_attestations(&network.genesis, "gossip", TXS, valid_until);
    submit_in_own_batches(&network, &txs, |i| i % 4).await;
    // Every validator holds every transaction once gossip has run its course: the ones
    // submitted elsewhere came by gossip (or were committed already).
    for index in 0..4 {
        let node = network.node(index);
        let held = || {
            txs.iter()
                .filter(|tx| {
                    node.mempool.lock().unwrap().contains(&tx.id())
                        || node.store.tx_location(&tx.id()).unwrap().is_some()
                })
                .count()
        };
        wait_until(
            || format!("node {index} holds {} of {TXS}", held()),
            async || held() == TXS,
        )
        .await;
    }
    let mut received_new = 0;
    for index in 0..4 {
        let metrics = get_text(network.api(index), "/metrics").await;
        // The proposal metrics come from the consensus application's counters: each node has
        // checked proposals of others by now, and its budget lies within its bounds.
        let checks = &network.node(index).network.proposal_checks;
        let streamed = metric_total(&metrics, "ipledger_proposals_executed_streaming_total");
        let complete = metric_total(&metrics, "ipledger_proposals_executed_complete_total");
        assert!(
            streamed + complete >= 1
                && streamed <= checks.streamed.load(Ordering::Relaxed)
                && complete <= checks.complete.load(Ordering::Relaxed),
            "node {index}'s metrics show {streamed} proposals checked streaming and {complete} complete"
        );
        let budget = metric_total(&metrics, "ipledger_proposal_budget_transactions");
        let block_txs_max = u64::from(network.genesis.params.block_txs_max);
        assert!(
            (ProposalBudget::FLOOR_TXS.min(block_txs_max as usize) as u64..=block_txs_max)
                .contains(&budget),
            "node {index}'s proposal budget is {budget} (chain limit {block_txs_max})"
        );
        let new = metric_total(&metrics, &gossip_metric("topic_msg_recv_counts_total"));
        let all = metric_total(
            &metrics,
            &gossip_metric("topic_msg_recv_counts_unfiltered_total"),
        );
        // A batch may arrive twice only if a heartbeat's advertisement of it overtook the
        // publisher's own copy: rare, so allow a few.
        assert!(
            all <= new + new / 10,
            "node {index} received {all} gossip messages, of which {new} new"
        );
        received_new += new;
    }
    // Each of the 40 batches reached the three validators it was not submitted to.
    assert!(
        received_new >= 3 * TXS as u64,
        "the validators received {received_new} new gossip messages, not {}",
        3 * TXS
    );
    network.stop().await;
}

/// Without a mesh nobody forwards, yet a batch still crosses a missing link: each heartbeat
/// a node advertises the ids of the messages it has seen to its peers, and a peer that lacks
/// one asks for it. Here the trading center and the court are not linked, and every transaction
/// is submitted to the trading center alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_crosses_a_missing_link_through_a_third_validator() {
    const TXS: usize = 10;
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start_with(network_genesis(), &[]).await;
    network.unlinked = vec![(0, 3)];
    for index in 0..4 {
        network.start_node(index).await;
    }
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    network
        .wait_for_gossip_peers(&[(0, 2), (1, 3), (2, 3), (3, 2)])
        .await;
    let valid_until = network.height(0) + 90;
    let txs = court_attestations(&network.genesis, "relayed", TXS, valid_until);
    submit_in_own_batches(&network, &txs, |_| 0).await;
    let api = network.api(3);
    let received = Cell::new(0);
    wait_until(
        || {
            format!(
                "the court received {} of the trading center's {TXS} batches",
                received.get()
            )
        },
        async || {
            let metrics = get_text(api.clone(), "/metrics").await;
            received.set(metric_total(
                &metrics,
                &gossip_metric("topic_msg_recv_counts_total"),
            ));
            received.get() >= TXS as u64
        },
    )
    .await;
    network.stop().await;
}

/// Once the validators `running` are past height 1, submits `count` court attestations
/// (`"<label> <i>"`) to them in turn, all at once, and waits until the first of them has
/// committed them all; returns the highest height among them.
async fn commit_backlog(network: &Network, running: &[usize], label: &str, count: usize) -> u64 {
    network.wait_for_height(running, 1).await;
    let valid_until = network.height(running[0]) + 90;
    let txs = court_attestations(&network.genesis, label, count, valid_until);
    for (i, tx) in txs.iter().enumerate() {
        submit(
            network.node(running[i % running.len()]),
            &network.genesis,
            tx.clone(),
            now_ms(),
        );
    }
    let ids: Vec<TxId> = txs.iter().map(SignedTx::id).collect();
    wait_for_commits(network.node(running[0]), &ids).await
}

/// Submits each of `txs` to node `to(i)`, each past the gossip flush interval after the last,
/// so that each is a gossip batch of its own.
async fn submit_in_own_batches(network: &Network, txs: &[SignedTx], to: impl Fn(usize) -> usize) {
    for (i, tx) in txs.iter().enumerate() {
        submit(network.node(to(i)), &network.genesis, tx.clone(), now_ms());
        tokio::time::sleep(ipledger_node::gossip::GOSSIP_FLUSH_INTERVAL * 2).await;
    }
}

/// The text `GET path` answers through `api`.
async fn get_text(api: ipledger_node::api::ApiState, path: &str) -> String {
    use tower::ServiceExt as _;
    let request = axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap();
    let response = ipledger_node::api::router(api)
        .oneshot(request)
        .await
        .expect("the router answers");
    assert_eq!(response.status(), axum::http::StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    String::from_utf8(body.to_vec()).expect("the answer is text")
}

/// The full name on `/metrics` of gossipsub's metric `name`.
fn gossip_metric(name: &str) -> String {
    format!("{}_{name}", ipledger_node::gossip::GOSSIP_METRICS_PREFIX)
}

/// The sum of a metric's samples over all its labels in an OpenMetrics text.
fn metric_total(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
        })
        .map(|line| {
            let value = line.rsplit(' ').next().expect("a sample has a value");
            value
                .parse::<u64>()
                .unwrap_or_else(|_| panic!("sample {line:?}"))
        })
        .sum()
}

/// `count` distinct court attestations (`"<label> <i>"`), valid until `valid_until`.
fn court_attestations(
    genesis: &Genesis,
    label: &str,
    count: usize,
    valid_until: u64,
) -> Vec<SignedTx> {
    (0..count)
        .map(|i| court_attestation(genesis, format!("{label} {i}").as_bytes(), valid_until))
        .collect()
}

/// An evidence attestation by the court, valid on `genesis` until `valid_until`.
fn court_attestation(genesis: &Genesis, what: &[u8], valid_until: u64) -> SignedTx {
    let mut chain = ledger_core::testkit::TestChain::new(4);
    let mut tx = chain.tx(
        ledger_core::tx::Action::AttestEvidence {
            attestor: "court".into(),
            evidence_hash: ledger_core::crypto::Digest::sha256(what),
            kind: ledger_core::types::EvidenceKind::Document,
            case_ref: None,
            related_asset: None,
        },
        &[],
    );
    tx.body.chain_id = genesis.chain_id.clone();
    tx.body.valid_until = valid_until;
    tx.signatures.clear();
    tx.sign(&test_key("court"));
    tx
}

/// `action` signed by `signers` for the network's chain, valid for 50 heights past `height`.
fn network_tx(genesis: &Genesis, action: Action, signers: &[&str], height: u64) -> SignedTx {
    let mut tx = ledger_core::testkit::TestChain::new(4).tx(action, &[]);
    tx.body.chain_id = genesis.chain_id.clone();
    tx.body.valid_until = height + 50;
    for signer in signers {
        tx.sign(&test_key(signer));
    }
    tx
}

/// Submits `tx` to `node` and waits until `node` commits it; returns the height.
async fn commit_through(node: &NodeHandle, genesis: &Genesis, tx: SignedTx) -> u64 {
    let id = tx.id();
    submit(node, genesis, tx, now_ms());
    wait_for_commits(node, &[id]).await
}

/// Waits until `node` has committed every transaction of `ids`; returns the highest height
/// among them.
async fn wait_for_commits(node: &NodeHandle, ids: &[TxId]) -> u64 {
    let height = |id: &TxId| {
        let location = node.store.tx_location(id).expect("readable");
        location.map(|location| location.height)
    };
    wait_until(
        || {
            let left = ids.iter().filter(|id| height(id).is_none()).count();
            let head = node.store.head_height().unwrap();
            format!(
                "{left} of {} transactions not committed by height {head}",
                ids.len()
            )
        },
        async || ids.iter().all(|id| height(id).is_some()),
    )
    .await;
    ids.iter()
        .filter_map(height)
        .max()
        .expect("at least one committed transaction")
}

/// What the API does with a submission: admission at the node, then gossip.
fn submit(node: &NodeHandle, genesis: &Genesis, tx: SignedTx, now_ms: u64) {
    admission::admit(&node.store, genesis, &node.mempool, tx.clone(), now_ms)
        .expect("the node admits the transaction");
    node.network.gossip.publish(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_submitted_to_a_validator_that_never_proposes_commits_everywhere() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start_some(&[0, 1, 2]).await;
    // The court's clock runs a minute ahead, so every block it proposes is refused: a
    // transaction that waited only in its mempool would never commit. Only gossip can carry
    // it to a proposer.
    let skew_ms = 60_000;
    network
        .start_node_with_clock(3, Arc::new(move || now_ms() + skew_ms))
        .await;
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    let tx = court_attestation(
        &network.genesis,
        b"network evidence",
        network.height(3) + 100,
    );
    let id = tx.id();
    submit(network.node(3), &network.genesis, tx, now_ms() + skew_ms);
    let height = wait_for_commits(network.node(0), &[id]).await;
    network.wait_for_height(&[0, 1, 2, 3], height).await;
    let block = network
        .node(0)
        .store
        .block(height)
        .unwrap()
        .expect("committed");
    assert_ne!(
        block.header.proposer,
        test_key("court/node").public_key(),
        "the court's proposals are refused"
    );
    for index in 0..4 {
        assert!(
            network
                .node(index)
                .store
                .tx_location(&id)
                .expect("readable")
                .is_some(),
            "node {index} has the tx"
        );
        assert!(
            !network.node(index).mempool.lock().unwrap().contains(&id),
            "node {index} dropped the committed tx from its mempool"
        );
    }
    network.assert_same_blocks(&[0, 1, 2, 3], height);
    // The validators that checked the proposal had the transaction from gossip, its signature
    // checked on entry: they did not check it again.
    let reused = network.proposal_checks_total(|checks| &checks.reused_signatures);
    assert!(reused > 0, "no validator reused a mempool signature check");
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_validator_catches_up_after_restart() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 2).await;
    network.nodes[3].take().expect("running").stop().await;
    let target = network.height(0) + 5;
    network.wait_for_height(&[0, 1, 2], target).await;
    network.start_node(3).await;
    network.wait_for_height(&[0, 1, 2, 3], target + 2).await;
    network.assert_same_blocks(&[0, 1, 2, 3], target + 2);
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_starting_from_an_empty_store_syncs_from_height_one() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start_some(&[0, 1, 2]).await;
    network.wait_for_height(&[0, 1, 2], 8).await;
    assert_eq!(
        network.dirs[3].path().read_dir().expect("dir").count(),
        0,
        "node 3 has never run"
    );
    network.start_node(3).await;
    let target = network.height(0) + 2;
    network.wait_for_height(&[0, 1, 2, 3], target).await;
    network.assert_same_blocks(&[0, 1, 2, 3], target);
    let synced = network.node(3).network.sync.borrow().last_synced_height;
    assert!(
        synced.is_some_and(|height| height >= 8),
        "status reports the blocks that came by sync: {synced:?}"
    );
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_network_restart_loses_nothing_and_continues() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 4).await;
    let mut before = Vec::new();
    for index in 0..4 {
        let node = network.nodes[index].take().expect("running");
        before.push(node.store.head_height().expect("readable"));
        node.stop().await;
    }
    let committed_everywhere = *before.iter().min().expect("four nodes");
    let reference: Vec<Vec<u8>> = {
        let store = ipledger_node::store::Store::open(&network.dirs[0].path().join("ledger.redb"))
            .expect("reopens");
        (1..=committed_everywhere)
            .map(|h| store.block(h).expect("readable").expect("kept").encode())
            .collect()
    };
    for (index, height_before) in before.iter().enumerate() {
        network.start_node(index).await;
        assert!(
            network.height(index) >= *height_before,
            "node {index} lost committed blocks"
        );
    }
    network.assert_same_blocks(&[0, 1, 2, 3], committed_everywhere);
    for (height, bytes) in (1..).zip(&reference) {
        assert_eq!(
            &network
                .node(1)
                .store
                .block(height)
                .unwrap()
                .unwrap()
                .encode(),
            bytes,
            "block {height} changed"
        );
    }
    network
        .wait_for_height(&[0, 1, 2, 3], before.iter().max().unwrap() + 3)
        .await;
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outsider_node_is_refused_and_has_no_effect() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    // A node whose key the genesis does not name dials every validator and would vote if it could.
    let outsider_dir = tempfile::tempdir().expect("tempdir");
    let outsider = network
        .start_guest("outsider", free_port(), &outsider_dir)
        .await;
    // The outsider also gossips transactions that every validator would otherwise admit, a new
    // one every 300 ms until the validators are six heights on (one message would be sent only
    // once, perhaps before any connection could exist).
    let target = network.height(0) + 6;
    let mut ids = Vec::new();
    while network.height(0) < target {
        let content = format!("outsider gossip {}", ids.len());
        let tx = court_attestation(&network.genesis, content.as_bytes(), target + 40);
        ids.push(tx.id());
        submit(&outsider, &network.genesis, tx, now_ms());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    network.wait_for_height(&[0, 1, 2, 3], target).await;
    assert_eq!(
        outsider.store.head_height().unwrap(),
        0,
        "validators must not serve an outsider"
    );
    for index in 0..4 {
        let node = network.node(index);
        for id in &ids {
            assert!(
                !node.mempool.lock().unwrap().contains(id),
                "node {index} took the outsider's gossip"
            );
            assert!(node.store.tx_location(id).unwrap().is_none());
        }
    }
    network.assert_same_blocks(&[0, 1, 2, 3], target);
    let outsider_key = test_key("outsider/node").public_key();
    for height in 1..target {
        let certificate = network
            .node(0)
            .store
            .certificate(height)
            .unwrap()
            .expect("certified");
        assert!(certificate
            .signatures
            .iter()
            .all(|s| s.validator != outsider_key));
    }
    outsider.stop().await;
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_from_a_validator_with_a_fast_clock_are_refused_and_the_chain_goes_on() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start_some(&[0, 1, 2]).await;
    // Court's clock runs a minute ahead, far beyond the genesis bound (5 s in test genesis).
    let skew_ms = 60_000;
    assert!(skew_ms > network.genesis.consensus.clock_skew_max_ms);
    network
        .start_node_with_clock(3, Arc::new(move || now_ms() + skew_ms))
        .await;
    network.wait_for_height(&[0, 1, 2, 3], 12).await;
    network.assert_same_blocks(&[0, 1, 2, 3], 12);
    let court_key = test_key("court/node").public_key();
    for height in 1..=12 {
        let header = network
            .node(0)
            .store
            .block(height)
            .unwrap()
            .expect("committed")
            .header;
        assert_ne!(
            header.proposer, court_key,
            "block {height} came from the fast-clock validator"
        );
        assert!(
            header.time_ms <= now_ms() + network.genesis.consensus.clock_skew_max_ms,
            "block {height} is from the future"
        );
    }
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_refused_until_governance_admits_it_as_a_validator_then_it_joins() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    // Every validator's config already names bank-c's node; the ledger does not admit it yet.
    let newcomer_key = test_key("bank-c/node");
    let newcomer_port = free_port();
    let newcomer_address = format!("/ip4/127.0.0.1/tcp/{newcomer_port}");
    let mut network = Network::start_some(&[]).await;
    network.extra_peers = vec![(newcomer_address.clone(), newcomer_key.public_key())];
    for index in 0..4 {
        network.start_node(index).await;
    }
    let newcomer_dir = tempfile::tempdir().expect("tempdir");
    let newcomer = network
        .start_guest("bank-c", newcomer_port, &newcomer_dir)
        .await;
    network.wait_for_height(&[0, 1, 2, 3], 4).await;
    assert_eq!(
        newcomer.store.head_height().unwrap(),
        0,
        "a node the ledger does not admit is not served"
    );

    // Governance: admit bank-c, then schedule its node as a fifth validator.
    let genesis = network.genesis.clone();
    let admit = Action::Governance(GovernanceAction::AdmitOrganisation {
        party: "bank-c".into(),
        name: "bank-c bank".into(),
        role: Role::Bank,
        key: test_key("bank-c").public_key(),
    });
    let height = network.height(0);
    let admit = network_tx(
        &genesis,
        admit,
        &["trading-center", "bank-a", "bank-b"],
        height,
    );
    commit_through(network.node(0), &genesis, admit).await;
    let mut validators = genesis.validators.clone();
    validators.push(Validator {
        organisation: "bank-c".into(),
        key: newcomer_key.public_key(),
        power: 1,
    });
    validators.sort_by_key(|v| v.key);
    let effective_height = network.height(0) + 30;
    let change = Action::Governance(GovernanceAction::ChangeValidators {
        validators,
        effective_height,
    });
    let height = network.height(0);
    let change = network_tx(
        &genesis,
        change,
        &["trading-center", "bank-a", "court"],
        height,
    );
    let scheduled_at = commit_through(network.node(0), &genesis, change).await;
    assert!(scheduled_at < effective_height);

    // Now admitted, it is connected, syncs, and signs certificates once the set takes effect.
    let first_signed = || {
        (effective_height..network.height(0)).find(|h| {
            network
                .node(0)
                .store
                .certificate(*h)
                .unwrap()
                .is_some_and(|c| {
                    c.signatures
                        .iter()
                        .any(|s| s.validator == newcomer_key.public_key())
                })
        })
    };
    wait_until(
        || {
            format!(
                "the admitted node never signed a certificate (its head: {})",
                newcomer.store.head_height().unwrap()
            )
        },
        async || first_signed().is_some(),
    )
    .await;
    let signed_at = first_signed().expect("a certificate it signed");
    network.wait_for_height(&[0, 1, 2, 3], signed_at + 1).await;
    wait_until(
        || "the admitted node did not catch up".into(),
        async || newcomer.store.head_height().unwrap() >= signed_at,
    )
    .await;
    for height in 1..=signed_at {
        assert_eq!(
            newcomer.store.block(height).unwrap().map(|b| b.encode()),
            network
                .node(0)
                .store
                .block(height)
                .unwrap()
                .map(|b| b.encode()),
            "the admitted node disagrees on block {height}"
        );
    }
    newcomer.stop().await;
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_with_a_slow_clock_still_catches_up_by_sync() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let mut network = Network::start_some(&[0, 1, 2]).await;
    network.wait_for_height(&[0, 1, 2], 8).await;
    // The court starts empty with a clock a minute behind: every block it syncs is "from the
    // future" by its clock, which only a fresh proposal is checked for.
    let skew_ms = 60_000;
    assert!(skew_ms > network.genesis.consensus.clock_skew_max_ms);
    network
        .start_node_with_clock(3, Arc::new(move || now_ms() - skew_ms))
        .await;
    let target = network.height(0) + 2;
    network.wait_for_height(&[0, 1, 2, 3], target).await;
    network.assert_same_blocks(&[0, 1, 2, 3], target);
    network.stop().await;
}
