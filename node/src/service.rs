//! A node as its binary runs it: a `config.toml` in, consensus plus the HTTP API out. The
//! binary and the in-process network tests start nodes through here, so both run the same code.

use crate::api::{self, ApiState};
use crate::runner::{start_with, NodeHandle, NodeSetup};
use anyhow::{Context, Result};
use ipledger_genesis::NodeConfig;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The system clock in Unix milliseconds: the proposer's block time and the API's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_millis() as u64
}

/// A node with its HTTP API.
pub struct RunningNode {
    /// The node.
    pub node: NodeHandle,
    stop_api: oneshot::Sender<()>,
    api: JoinHandle<Result<()>>,
}

impl RunningNode {
    /// Stops the API first (waiting clients get `shutting_down` at once), then consensus.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop_api.send(());
        let api = self.api.await.context("the API task panicked");
        self.node.stop().await;
        api?
    }
}

/// Loads the genesis and node key a config names, checks they agree, and describes the node.
pub fn setup_from_config(config: &NodeConfig) -> Result<NodeSetup> {
    let genesis = config.load_genesis().context("loading the genesis")?;
    let node_key = config.load_node_key().context("loading the node key")?;
    config
        .check_genesis(&genesis, &node_key.public_key())
        .context("config and genesis disagree")?;
    Ok(NodeSetup {
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
    })
}

/// Starts the node a config describes and its HTTP API on the configured address. The API's
/// address is bound first, so a bad or taken address fails at start rather than later.
pub async fn start_from_config(config: &NodeConfig) -> Result<RunningNode> {
    let setup = setup_from_config(config)?;
    let genesis = setup.genesis.clone();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http.listen))?;
    let node = start_with(setup, config.byzantine.as_ref()).await?;
    let state = ApiState::new(
        node.store.clone(),
        genesis,
        node.mempool.clone(),
        node.committed.clone(),
        Arc::new(now_ms),
    )
    .with_network(node.network.clone());
    let (stop_api, api_stopped) = oneshot::channel::<()>();
    let api = tokio::spawn(api::serve_on(listener, state, async {
        let _ = api_stopped.await;
    }));
    Ok(RunningNode {
        node,
        stop_api,
        api,
    })
}
