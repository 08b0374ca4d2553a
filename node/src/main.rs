//! `ipledger-node`: runs a validator or full node from a config written by `ipledger-genesis`,
//! or checks a node's store from genesis.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ipledger_genesis::NodeConfig;
use ipledger_node::service::start_from_config;
use ipledger_node::store::Store;
use std::path::PathBuf;

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
    let running = start_from_config(&config).await?;
    let height = running.node.store.head_height()?;
    tracing::info!(moniker = %config.moniker, height, http = %config.http.listen, "node started");
    wait_for_shutdown_signal().await?;
    tracing::info!("shutting down");
    running.stop().await
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
