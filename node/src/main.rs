//! `ipledger-node`: runs a validator or full node from a config written by `ipledger-genesis`,
//! or checks a node's store from genesis.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ipledger_genesis::NodeConfig;
use ipledger_node::api::{self, ApiState};
use ipledger_node::runner::{start, NodeSetup};
use ipledger_node::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    version,
    about = "An ipledger node: consensus, storage and API for one consortium member"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the node until SIGINT or SIGTERM.
    ///
    /// Example: ipledger-node run --config net/node-bank-a/config.toml
    Run {
        /// The node's config.toml (written by `ipledger-genesis local` or `config`).
        #[arg(long)]
        config: PathBuf,
    },
    /// Re-executes the whole stored chain from genesis and checks every block, certificate and
    /// state root; exits non-zero naming the first height that does not verify.
    ///
    /// Example: ipledger-node verify-store --config net/node-bank-a/config.toml
    VerifyStore {
        /// The node's config.toml.
        #[arg(long)]
        config: PathBuf,
    },
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the system clock is after 1970")
        .as_millis() as u64
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => run(config).await,
        Command::VerifyStore { config } => verify_store(config),
    }
}

async fn run(config_path: PathBuf) -> Result<()> {
    let config = NodeConfig::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    init_logging(&config.log_level);
    let genesis = config.load_genesis().context("loading the genesis")?;
    let node_key = config.load_node_key().context("loading the node key")?;
    config
        .check_genesis(&genesis, &node_key.public_key())
        .context("config and genesis disagree")?;
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
    // Bind the API first, so a bad or taken address fails at start rather than later.
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("binding the HTTP API to {}", config.http.listen))?;
    let node = start(setup).await?;
    let api_state = ApiState::new(
        node.store.clone(),
        genesis,
        node.mempool.clone(),
        node.committed.clone(),
        Arc::new(now_ms),
    );
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let api = tokio::spawn(api::serve_on(listener, api_state, async {
        let _ = api_stopped.await;
    }));
    tracing::info!(moniker = %config.moniker, height = node.store.head_height()?, http = %config.http.listen, "node started");
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    // Stop the API first: waiting clients get `shutting_down` at once, then consensus stops.
    let _ = stop_api.send(());
    api.await.context("the API task panicked")??;
    node.stop().await;
    Ok(())
}

async fn wait_for_shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for SIGINT"),
        _ = terminate.recv() => Ok(()),
    }
}

fn verify_store(config_path: PathBuf) -> Result<()> {
    let config = NodeConfig::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    let store = Store::open(&config.data_dir().join("ledger.redb"))?;
    let report = store.verify_chain()?;
    println!("{report:?}");
    Ok(())
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}
