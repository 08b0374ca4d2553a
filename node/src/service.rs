//! A node as its binary runs it: a `config.toml` in, consensus plus the HTTP API out. The
//! binary and the in-process network tests start nodes through here, so both run the same code.
//!
//! A node that stops by itself (a failed durable write such as a full disk, a broken invariant,
//! the engine stopping itself after a failed write of its write-ahead log) has already stopped
//! signing when [`RunningNode::failure`] resolves; [`describe_failure`] turns the cause into words
//! an operator can act on, naming the data directory and saying "no space left" when that is it.

use crate::api::{self, ApiState};
use crate::consensus::app::EngineStopped;
use crate::runner::{start_with, NodeHandle, NodeSetup};
use crate::store::{is_no_space, mentions_no_space};
use anyhow::{anyhow, Context, Result};
use ipledger_genesis::NodeConfig;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The system clock in Unix milliseconds: the proposer's block time and the API's clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_millis() as u64
}

/// A duration in whole milliseconds, as the node's logs report durations (`commit_ms`, a
/// pruning batch's `ms`), saturating instead of wrapping.
pub fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// A node with its HTTP API.
pub struct RunningNode {
    /// The node.
    pub node: NodeHandle,
    data_dir: PathBuf,
    stop_api: oneshot::Sender<()>,
    api: JoinHandle<Result<()>>,
}

impl RunningNode {
    /// Resolves once the node has stopped by itself, with why, described by
    /// [`describe_failure`]. Its engine is stopped by then, so it signs nothing more; the caller
    /// still calls [`RunningNode::stop`] to close the API. Never resolves for a healthy node.
    pub fn failure(&self) -> impl Future<Output = anyhow::Error> + Send + 'static {
        let mut failure = self.node.failure.clone();
        let data_dir = self.data_dir.clone();
        async move {
            let error = match failure.wait_for(Option::is_some).await {
                Ok(error) => error.clone(),
                Err(_) => None,
            };
            match error {
                Some(error) => describe_failure(&error, &data_dir),
                // The node was dropped without failing: nothing to report, ever.
                None => std::future::pending().await,
            }
        }
    }

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
        store_cache_bytes: config.store.cache_bytes(),
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
    let data_dir = setup.data_dir.clone();
    let genesis = setup.genesis.clone();
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http.listen))?;
    let node = start_with(setup, config.byzantine.as_ref())
        .await
        .map_err(|error| describe_failure(&error, &data_dir))?;
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
        data_dir,
        stop_api,
        api,
    })
}

/// The first reason the consensus engine logged for stopping itself, if [`EngineFailureLog`] is
/// installed (the binary installs it; Malachite reports the reason only in its log).
static ENGINE_FAILURE_REASON: OnceLock<String> = OnceLock::new();

/// Why a node stopped or could not start, for an operator: the cause's whole chain, with the
/// engine's own reason when the engine stopped itself, and for a full file system a first line
/// that says so, names the data directory, and says what to do.
pub fn describe_failure(error: &anyhow::Error, data_dir: &Path) -> anyhow::Error {
    let engine_reason = error
        .downcast_ref::<EngineStopped>()
        .and_then(|_| ENGINE_FAILURE_REASON.get());
    let mut cause = chain_text(error);
    if let Some(reason) = engine_reason {
        cause = format!("{cause}: {reason}");
    }
    let no_space =
        is_no_space(error.chain()) || engine_reason.is_some_and(|r| mentions_no_space(r));
    if no_space {
        anyhow!(
            "no space left on the device holding the data directory {}: the node signs and \
             acknowledges nothing it cannot store, so it stopped. Free space there and start it \
             again; it catches up from its peers. Cause: {cause}",
            data_dir.display()
        )
    } else {
        anyhow!("node with data directory {}: {cause}", data_dir.display())
    }
}

/// An error and its causes joined by ": ", leaving out a cause whose words the text already holds
/// (the store's errors repeat their source in their own message).
fn chain_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let words = cause.to_string();
        if text.contains(&words) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&words);
    }
    text
}

/// A `tracing` layer that keeps the first reason the consensus engine logs, at error level, for
/// stopping itself (its safety or liveness failure), so that [`describe_failure`] can report it.
pub struct EngineFailureLog;

impl EngineFailureLog {
    /// Whether an event is one the engine logs when it stops itself.
    pub fn wants(metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::ERROR
            && metadata.target().starts_with("arc_malachitebft_engine")
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for EngineFailureLog {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Reason(Option<String>);
        impl tracing::field::Visit for Reason {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "reason" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if !EngineFailureLog::wants(event.metadata()) {
            return;
        }
        let mut reason = Reason(None);
        event.record(&mut reason);
        if let Some(reason) = reason.0 {
            let _ = ENGINE_FAILURE_REASON.set(reason);
        }
    }
}
