//! The demo's users' flows ([`ipledger_tests::flows::run`]) against a four-validator network
//! started in this process from a directory made by `ipledger-genesis local` (fresh keys, ports
//! from the OS), each node started from its `config.toml` as `ipledger-node run` starts it, with
//! its HTTP API on the configured address. `scripts/demo.sh` runs the same flows against four
//! node processes.

use anyhow::{Context, Result};
use ipledger_genesis::{create_local, LocalOptions, NodeConfig};
use ipledger_node::api::{self, ApiState};
use ipledger_node::runner::NodeSetup;
use ipledger_node::runner::{start, NodeHandle};
use ipledger_tests::{flows, Net};
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

struct RunningNode {
    node: NodeHandle,
    stop_api: oneshot::Sender<()>,
    api: JoinHandle<Result<()>>,
}

async fn start_node(config_path: &Path) -> Result<RunningNode> {
    let config = NodeConfig::load(config_path)?;
    let genesis = config.load_genesis()?;
    let node_key = config.load_node_key()?;
    config.check_genesis(&genesis, &node_key.public_key())?;
    let setup = NodeSetup {
        moniker: config.moniker.clone(),
        genesis: Arc::new(genesis),
        node_key: Arc::new(node_key.into_signing_key()),
        data_dir: config.data_dir(),
        listen_addr: config.p2p.listen.as_str().to_owned(),
        peers: config
            .p2p
            .peers
            .iter()
            .map(|peer| (peer.address.as_str().to_owned(), peer.public_key))
            .collect(),
        validator: config.validator,
        clock_ms: Arc::new(now_ms),
    };
    let genesis = setup.genesis.clone();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding {}", config.http.listen))?;
    let node = start(setup).await?;
    let state = ApiState::new(
        node.store.clone(),
        genesis,
        node.mempool.clone(),
        node.committed.clone(),
        Arc::new(now_ms),
    );
    let (stop_api, stopped) = oneshot::channel::<()>();
    let api = tokio::spawn(api::serve_on(listener, state, async {
        let _ = stopped.await;
    }));
    Ok(RunningNode {
        node,
        stop_api,
        api,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_users_flows_pass_on_a_four_validator_network() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = create_local(&LocalOptions::new(dir.path().join("net"))).expect("local network");
    let net_dir = dir.path().join("net");
    let mut nodes = Vec::new();
    for node in &local.nodes {
        nodes.push(start_node(&node.config_path).await.expect("node starts"));
    }
    let flows_dir = net_dir.clone();
    let summary = tokio::task::spawn_blocking(move || {
        let mut net = Net::open(&flows_dir)?;
        net.wait_for_height(&net.nodes[0], 1)?;
        flows::run(&mut net)
    })
    .await
    .expect("the flows do not panic");
    for running in nodes {
        let _ = running.stop_api.send(());
        let _ = running.api.await;
        running.node.stop().await;
    }
    let summary = summary.expect("every step behaves as the rules say");
    assert_eq!((summary.committed, summary.refused), (9, 3));
}
