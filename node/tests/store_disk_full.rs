//! A validator whose data directory (its store and the engine's write-ahead log) is on a small
//! file system that fills up stops signing and exits non-zero, saying "no space left" and naming
//! the directory, while the others go on. Once space is freed and it is restarted on the same
//! directory, it catches up by sync and holds every block, identical to the others', and every
//! transaction any node acknowledged, its own acknowledgements included.
//!
//! Two ways to fill it: transactions, so that the store's commit is the write that fails; and
//! rounds that never decide (two validators' clocks are a minute fast, so every proposal is
//! refused by half of them), where no block commits but every round adds proposals, votes and
//! timeouts to the engine's write-ahead log, so that the log's append is the write that fails
//! (the engine then stops itself, and the node reports the engine's reason). The log is reset at
//! each height and one height's entries fit in the file-system page it already has, so only a
//! height with many rounds makes it grow.
//!
//! The validator runs as the operator runs it, `ipledger-node run` in a child process, on a tmpfs
//! of [`TMPFS_MIB`] MiB (mounting needs root; without it the tests fail, they never skip). The
//! other three run in this process from the same `ipledger-genesis local` directory.

mod store_common;
use ipledger_genesis::{KeyFile, LocalNetwork, NodeConfig};
use ipledger_node::admission;
use ipledger_node::runner::{start, NodeHandle};
use ipledger_node::service::setup_from_config;
use ipledger_node::store::Store;
use ledger_core::crypto::{Digest, PublicKey};
use ledger_core::genesis::Genesis;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use store_common::process::*;

/// Networks in this file run one at a time.
static ONE_NETWORK_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The small file system's size. A new store and log take well under 2 MiB.
const TMPFS_MIB: u64 = 32;
/// What the filler leaves free when transactions fill the disk: a few blocks' worth of growth,
/// so the node fails soon.
const HEADROOM_BYTES: u64 = 256 * 1024;
/// Transactions submitted to a healthy validator per round while the disk fills.
const TXS_PER_ROUND: usize = 10;
/// The pause between those rounds.
const ROUND_INTERVAL: Duration = Duration::from_millis(200);
/// How long a `?wait=true` submission to the filling node waits for its commit.
const WAIT_TIMEOUT_MS: u64 = 20_000;
/// The validator (index in the local network) whose disk fills: the court.
const FULL: usize = 3;
/// How far ahead the fast clocks are: far beyond the genesis's `clock_skew_max_ms`.
const FAST_CLOCK_MS: u64 = 60_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

fn height(node: &NodeHandle) -> u64 {
    node.store.head_height().expect("store readable")
}

/// Four validators of a local network: three in this process, the fourth ([`FULL`]) a child
/// process whose data directory is on a small tmpfs.
///
/// Fields drop in order: the nodes, then the tmpfs (unmounted), then the directory holding it.
struct Network {
    /// The three in this process, by index; `None` while stopped.
    nodes: Vec<Option<NodeHandle>>,
    tmpfs: Tmpfs,
    data_dir: PathBuf,
    local: LocalNetwork,
    configs: Vec<NodeConfig>,
    genesis: Genesis,
    court: KeyFile,
    dir: tempfile::TempDir,
}

impl Network {
    /// Starts the four, the three in this process with their clocks `ahead_ms` ahead, and waits
    /// until the fourth's API answers at `height`.
    async fn start(ahead_ms: [u64; FULL], height: u64) -> (Network, NodeProcess) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (local, mut configs) = local_network(dir.path(), 4);
        let tmpfs = Tmpfs::mount(&dir.path().join("small-disk"), TMPFS_MIB);
        let data_dir = tmpfs.path.join("data");
        set_data_dir(
            &local.nodes[FULL].config_path,
            &mut configs[FULL],
            &data_dir,
        );
        let genesis = configs[0].load_genesis().expect("genesis");
        let court = KeyFile::read(court_key_path(&local)).expect("court key");
        let mut network = Network {
            dir,
            local,
            configs,
            genesis,
            court,
            nodes: (0..FULL).map(|_| None).collect(),
            tmpfs,
            data_dir,
        };
        for (index, ahead_ms) in ahead_ms.into_iter().enumerate() {
            network.start_node(index, ahead_ms).await;
        }
        let mut process = network.start_process("first");
        tokio::task::block_in_place(|| process.wait_for_height(height));
        (network, process)
    }

    /// Starts validator `index` in this process (without its HTTP API), its clock `ahead_ms`
    /// ahead.
    async fn start_node(&mut self, index: usize, ahead_ms: u64) {
        let mut setup = setup_from_config(&self.configs[index]).expect("config");
        setup.clock_ms = Arc::new(move || now_ms() + ahead_ms);
        self.nodes[index] = Some(start(setup).await.expect("validator starts"));
    }

    async fn stop_node(&mut self, index: usize) {
        self.nodes[index].take().expect("running").stop().await;
    }

    fn node(&self, index: usize) -> &NodeHandle {
        self.nodes[index].as_ref().expect("running")
    }

    fn running(&self) -> impl Iterator<Item = &NodeHandle> {
        self.nodes.iter().flatten()
    }

    fn start_process(&self, run: &str) -> NodeProcess {
        let config_path = &self.local.nodes[FULL].config_path;
        NodeProcess::start(config_path, &self.configs[FULL], &self.logs(), run)
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn full_key(&self) -> PublicKey {
        self.local.nodes[FULL].public_key
    }

    async fn wait_for_height(&self, target: u64) {
        let started = Instant::now();
        while self.running().any(|node| height(node) < target) {
            let heights: Vec<u64> = self.running().map(height).collect();
            assert!(
                started.elapsed() < PROCESS_DEADLINE,
                "validators stuck at {heights:?}, waiting for {target}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Submits `TXS_PER_ROUND` attestations to validator 0 as its API would (admission, then
    /// gossip); returns their ids.
    fn submit_round(&self, round: usize) -> Vec<Digest> {
        let node = self.node(0);
        let valid_until = height(node) + 1_000;
        (0..TXS_PER_ROUND)
            .map(|n| {
                let what = format!("fill {round}/{n}");
                let tx = court_attestation(&self.genesis, &self.court, &what, valid_until);
                let id = tx.id();
                admission::admit(
                    &node.store,
                    &self.genesis,
                    &node.mempool,
                    tx.clone(),
                    now_ms(),
                )
                .expect("a healthy validator admits the transaction");
                node.network.gossip.publish(tx);
                id
            })
            .collect()
    }

    /// Asserts that the process failed as it must: exit 1, "no space left", the data directory
    /// named, no panic. Returns its error output.
    fn assert_failed_for_space(
        &self,
        process: &NodeProcess,
        status: std::process::ExitStatus,
    ) -> String {
        let stderr = process.stderr();
        assert_eq!(status.code(), Some(1), "a failure exits 1:\n{stderr}");
        assert!(stderr.contains("no space left"), "{stderr}");
        assert!(
            stderr.contains(&self.data_dir.display().to_string()),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!stderr.contains("backtrace"), "{stderr}");
        stderr
    }

    /// The failed node's store head, read with space freed.
    fn head_of_failed(&self) -> u64 {
        let store = Store::open(&self.data_dir.join("ledger.redb")).expect("the store opens");
        store.head_height().expect("readable")
    }

    /// Asserts that no certificate from `from` up to validator 0's head carries the failed
    /// node's signature (a certificate holds the precommits its block was decided with).
    fn assert_not_signed_from(&self, from: u64) {
        let store = &self.node(0).store;
        for h in from..=height(self.node(0)) {
            let certificate = store.certificate(h).unwrap().expect("certified");
            assert!(
                certificate
                    .signatures
                    .iter()
                    .all(|s| s.validator != self.full_key()),
                "the failed node signed the certificate of height {h}"
            );
        }
    }

    /// Restarts the failed node, waits until it is two blocks past validator 0's head, stops
    /// it, and checks its store: identical blocks and certificates, verified from genesis.
    /// Returns the store.
    async fn restart_and_compare(&self) -> (Store, u64) {
        let mut process = self.start_process("restarted");
        let target = height(self.node(0)) + 2;
        tokio::task::block_in_place(|| process.wait_for_height(target));
        let status = tokio::task::block_in_place(|| process.terminate());
        assert!(
            status.success(),
            "a graceful stop exits 0: {}",
            process.stderr()
        );
        drop(process);
        let store = Store::open(&self.data_dir.join("ledger.redb")).expect("the store opens");
        let others = &self.node(0).store;
        for h in 1..=target {
            assert_eq!(
                store.block(h).unwrap().map(|b| b.encode()),
                others.block(h).unwrap().map(|b| b.encode()),
                "block {h} differs from the other validators'"
            );
            assert!(store.certificate(h).unwrap().is_some(), "certificate {h}");
        }
        let report = store
            .verify_chain()
            .expect("the store verifies from genesis");
        eprintln!("caught up to {target}: {report:?}");
        (store, target)
    }

    async fn stop(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.stop().await;
        }
    }
}

fn court_key_path(local: &LocalNetwork) -> &Path {
    &local
        .organisations
        .iter()
        .find(|org| org.party.0 == "court")
        .expect("a court")
        .key_path
}

/// A client of the node whose disk fills: submits attestations one after another with
/// `?wait=true` and keeps the ids the node acknowledged as committed (200), with their heights,
/// until `stop`.
fn acknowledging_client(
    network: &Network,
    process: &NodeProcess,
    stop: Arc<AtomicBool>,
    acknowledged: Arc<Mutex<Vec<(Digest, u64)>>>,
) -> std::thread::JoinHandle<()> {
    let address = process.http;
    let genesis = network.genesis.clone();
    let court = KeyFile::read(court_key_path(&network.local)).expect("court key");
    std::thread::spawn(move || {
        let path = format!("/v1/transactions?wait=true&timeout_ms={WAIT_TIMEOUT_MS}");
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let valid_until = match http(address, "GET", "/v1/status", None, HTTP_TIMEOUT) {
                Ok((200, status)) => status["height"].as_u64().unwrap_or(0) + 1_000,
                // Not answering (full, or exited): try again shortly.
                _ => {
                    std::thread::sleep(POLL_INTERVAL);
                    continue;
                }
            };
            let tx = court_attestation(&genesis, &court, &format!("client {n}"), valid_until);
            let body = serde_json::to_vec(&tx).expect("JSON");
            if let Ok((200, answer)) = http(address, "POST", &path, Some(&body), HTTP_TIMEOUT) {
                assert_eq!(answer["status"], "committed", "{answer}");
                let height = answer["height"]
                    .as_u64()
                    .expect("a committed answer has its height");
                acknowledged.lock().unwrap().push((tx.id(), height));
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_disk_fills_stops_signing_exits_and_catches_up_once_space_is_freed() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    let (network, mut process) = Network::start([0; FULL], 2).await;

    // A client of the filling node from now on, and the disk all but full.
    let stop_client = Arc::new(AtomicBool::new(false));
    let by_full: Arc<Mutex<Vec<(Digest, u64)>>> = Arc::default();
    let client = acknowledging_client(&network, &process, stop_client.clone(), by_full.clone());
    let filler = fill_leaving(&network.tmpfs.path, HEADROOM_BYTES);

    // Transactions to a healthy validator, gossiped to all, until the filling node gives up.
    let started = Instant::now();
    let mut submitted = Vec::new();
    let status = loop {
        if let Some(status) = process.exited() {
            break status;
        }
        assert!(
            started.elapsed() < PROCESS_DEADLINE,
            "the node with a full disk neither failed nor exited:\n{}",
            process.log_tail()
        );
        submitted.extend(network.submit_round(submitted.len()));
        tokio::time::sleep(ROUND_INTERVAL).await;
    };
    stop_client.store(true, Ordering::Relaxed);
    let stopped_at = height(network.node(0));
    let stderr = network.assert_failed_for_space(&process, status);
    eprintln!(
        "the node with a full disk exited ({status}) after {:?}, the others at height \
         {stopped_at}; its error output:\n{stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains("committing block"),
        "the store's commit failed: {stderr}"
    );

    // Three of four are a quorum: they go on.
    network.wait_for_height(stopped_at + 3).await;

    // Space freed, the store opens at the height it had; the node signed nothing past the block
    // it failed to store.
    std::fs::remove_file(&filler).expect("remove the filler");
    let head_at_failure = network.head_of_failed();
    network.assert_not_signed_from(head_at_failure + 2);

    // Restarted on the same directory, it catches up, with everything anyone acknowledged.
    let (store, target) = network.restart_and_compare().await;
    client.join().expect("the client thread");
    let by_full = by_full.lock().unwrap().clone();
    for (id, at) in &by_full {
        assert_eq!(
            store.tx_location(id).unwrap().map(|l| l.height),
            Some(*at),
            "transaction {id}, acknowledged at height {at} by the node, is not where it said"
        );
    }
    let mut committed_elsewhere = 0;
    for id in &submitted {
        if let Some(location) = network.node(0).store.tx_location(id).unwrap() {
            committed_elsewhere += 1;
            assert_eq!(store.tx_location(id).unwrap(), Some(location), "{id}");
        }
    }
    eprintln!(
        "head at failure {head_at_failure}, caught up to {target}; the {} transactions it \
         acknowledged and the {committed_elsewhere} the others acknowledged are all there",
        by_full.len()
    );
    assert!(
        !by_full.is_empty(),
        "the node acknowledged some transactions itself"
    );
    drop(store);
    network.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_whose_write_ahead_log_cannot_grow_stops_signing_and_exits() {
    let _one = ONE_NETWORK_AT_A_TIME.lock().await;
    // Half the clocks a minute fast: every proposal is refused by half the validators, so no
    // height is ever decided, and round after round adds to the log of height 1. Once the node
    // answers, the disk is filled to the last byte.
    let (mut network, mut process) = Network::start([FAST_CLOCK_MS, FAST_CLOCK_MS, 0], 0).await;
    let stalled_at = height(network.node(0));
    let filler = fill_leaving(&network.tmpfs.path, 0);
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| process.wait_for_exit());
    let stderr = network.assert_failed_for_space(&process, status);
    eprintln!(
        "the node exited ({status}) {:?} after its disk was filled, the network stalled at \
         {stalled_at}; its error output:\n{stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains("wal_append"),
        "the engine's log append failed: {stderr}"
    );

    // Space freed and the clocks right: the failed node's store is where it was, the others
    // commit without it, and it signed none of their blocks.
    std::fs::remove_file(&filler).expect("remove the filler");
    let head_at_failure = network.head_of_failed();
    assert_eq!(head_at_failure, stalled_at, "no block was ever decided");
    for index in 0..FULL {
        network.stop_node(index).await;
        network.start_node(index, 0).await;
    }
    network.wait_for_height(stalled_at + 3).await;
    network.assert_not_signed_from(head_at_failure + 1);

    let (store, _) = network.restart_and_compare().await;
    drop(store);
    network.stop().await;
}
