//! Four validators on loopback agree on every block, commit transactions submitted to any of
//! them, and a stopped validator catches up when restarted.
//!
//! Each test starts its own network on ports from the OS; the tests in this file run one at a
//! time (a shared lock), so a 2-core CI machine runs one network at a time.

use ipledger_node::consensus::app::Committed;
use ipledger_node::runner::{start, NodeHandle, NodeSetup};
use ledger_core::genesis::Genesis;
use ledger_core::testkit::{test_genesis, test_key, TEST_ORGANISATIONS};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Networks in this file run one at a time.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Generous: a loaded 2-core machine may be slow, and a condition is polled, never slept on.
const DEADLINE: Duration = Duration::from_secs(120);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
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
}

impl Network {
    async fn start() -> Network {
        Network::start_some(&[0, 1, 2, 3]).await
    }

    /// A network of four validators of which only `running` start now.
    async fn start_some(running: &[usize]) -> Network {
        init_logs();
        let genesis = Arc::new(network_genesis());
        let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
        let dirs: Vec<tempfile::TempDir> = (0..4)
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut network = Network {
            genesis,
            dirs,
            ports,
            nodes: (0..4).map(|_| None).collect(),
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
            listen_addr: format!("/ip4/127.0.0.1/tcp/{}", self.ports[index]),
            peers: (0..4)
                .filter(|i| *i != index)
                .map(|i| {
                    let key = test_key(&format!("{}/node", TEST_ORGANISATIONS[i].0)).public_key();
                    (format!("/ip4/127.0.0.1/tcp/{}", self.ports[i]), key)
                })
                .collect(),
            validator: true,
            clock_ms,
        };
        self.nodes[index] = Some(start(setup).await.expect("node starts"));
    }

    fn node(&self, index: usize) -> &NodeHandle {
        self.nodes[index].as_ref().expect("node running")
    }

    fn height(&self, index: usize) -> u64 {
        self.node(index)
            .store
            .head_height()
            .expect("store readable")
    }

    async fn wait_for_height(&self, indices: &[usize], height: u64) {
        let started = Instant::now();
        while !indices.iter().all(|i| self.height(*i) >= height) {
            let heights: Vec<u64> = indices.iter().map(|i| self.height(*i)).collect();
            assert!(
                started.elapsed() < DEADLINE,
                "nodes {indices:?} stuck at heights {heights:?}, waiting for {height}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
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
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_submitted_to_one_validator_commits_everywhere() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let network = Network::start().await;
    network.wait_for_height(&[0, 1, 2, 3], 1).await;
    let mut chain = ledger_core::testkit::TestChain::new(4);
    let mut tx = chain.tx(
        ledger_core::tx::Action::AttestEvidence {
            attestor: "court".into(),
            evidence_hash: ledger_core::crypto::Digest::sha256(b"network evidence"),
            kind: ledger_core::types::EvidenceKind::Document,
            case_ref: None,
            related_asset: None,
        },
        &[],
    );
    tx.body.chain_id = network.genesis.chain_id.clone();
    tx.body.valid_until = network.height(0) + 100;
    tx.signatures.clear();
    tx.sign(&test_key("court"));
    let id = tx.id();
    let mut committed = network.node(2).committed.subscribe();
    let vtx = ledger_core::rules::VerifiedTx::verify(tx).expect("signed");
    network
        .node(2)
        .mempool
        .lock()
        .unwrap()
        .insert(vtx)
        .expect("mempool accepts");
    let started = Instant::now();
    let height = loop {
        assert!(started.elapsed() < DEADLINE, "transaction never committed");
        match tokio::time::timeout(Duration::from_secs(1), committed.recv()).await {
            Ok(Ok(Committed { height, tx_ids })) if tx_ids.contains(&id) => break height,
            _ => continue,
        }
    };
    network.wait_for_height(&[0, 1, 2, 3], height).await;
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
    }
    network.assert_same_blocks(&[0, 1, 2, 3], height);
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
    let outsider = start(NodeSetup {
        moniker: format!("outsider-{}", network.ports[0]),
        genesis: network.genesis.clone(),
        node_key: Arc::new(test_key("outsider/node")),
        data_dir: outsider_dir.path().to_path_buf(),
        listen_addr: format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        peers: (0..4)
            .map(|i| {
                let key = test_key(&format!("{}/node", TEST_ORGANISATIONS[i].0)).public_key();
                (format!("/ip4/127.0.0.1/tcp/{}", network.ports[i]), key)
            })
            .collect(),
        validator: true,
        clock_ms: Arc::new(now_ms),
    })
    .await
    .expect("the outsider starts");
    let target = network.height(0) + 6;
    network.wait_for_height(&[0, 1, 2, 3], target).await;
    assert_eq!(
        outsider.store.head_height().unwrap(),
        0,
        "validators must not serve an outsider"
    );
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
