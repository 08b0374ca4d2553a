//! `ipledger-node`: runs a validator or full node from a config written by `ipledger-genesis`,
//! checks a node's store from genesis, or prints what its store's tables hold.

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ipledger_genesis::NodeConfig;
use ipledger_node::service::{describe_failure, start_from_config, EngineFailureLog};
use ipledger_node::store::{Store, StoreSizes};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Runs the node until SIGINT or SIGTERM, or until it stops by itself: a failed durable write
    /// (e.g. no space left in its data directory), a failure of its consensus engine, or one of
    /// its tasks (gossip, the state pruner) panicking. Then it has stopped signing, and it exits
    /// non-zero with the reason on stderr.
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
    /// Prints what each table of the store holds: its rows, its pages, its bytes (stored, the
    /// B-tree's bookkeeping, unused) and those bytes per committed transaction; then how much
    /// of the file the tables take. Run it on a stopped node: the store admits one process.
    ///
    /// Example: ipledger-node store-stats --config net/node-bank-a/config.toml
    StoreStats {
        /// The node's config.toml.
        #[arg(long)]
        config: PathBuf,
    },
}

/// jemalloc, not glibc malloc. Under issue 6's load, glibc's malloc and free were a fifth of the
/// node's CPU (fastbin consolidation, chunk unlinking); with jemalloc a node used 13-19 % less CPU
/// per transaction, for about 1.2x the peak memory (docs/PERFORMANCE.md, "jemalloc as the node's
/// allocator"). glibc also needed its arenas capped to keep freed memory from piling up in
/// per-thread arenas (docs/RELIABILITY.md, "Memory"); jemalloc returns freed pages to the system
/// after a decay time.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Exits 0, or 1 with the error and its causes on one line of stderr (no backtrace, whatever
/// `RUST_BACKTRACE` says: an operator needs the reason, not our stack).
fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
            .and_then(|runtime| runtime.block_on(run(config))),
        Command::VerifyStore { config } => verify_store(config),
        Command::StoreStats { config } => store_stats(config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config_path: PathBuf) -> Result<()> {
    let config = NodeConfig::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    init_logging(&config.log_level);
    let running = start_from_config(&config).await?;
    let height = running.node.store.head_height()?;
    tracing::info!(moniker = %config.moniker, height, http = %config.http.listen, "node started");
    tokio::select! {
        signal = wait_for_shutdown_signal() => {
            signal?;
            tracing::info!("shutting down");
            running.stop().await
        }
        failure = running.failure() => {
            tracing::error!("{failure:#}");
            // The engine is already stopped; this closes the API. Its own errors matter less
            // than the failure, which is what the process reports.
            let _ = running.stop().await;
            Err(failure)
        }
    }
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
    let data_dir = config.data_dir();
    let check = || -> Result<_> {
        let store = Store::open(&data_dir.join("ledger.redb"))?;
        Ok(store.verify_chain()?)
    };
    let report = check().map_err(|error| describe_failure(&error, &data_dir))?;
    println!("{report:?}");
    Ok(())
}

fn store_stats(config_path: PathBuf) -> Result<()> {
    let config = NodeConfig::load(&config_path)
        .with_context(|| format!("loading {}", config_path.display()))?;
    let data_dir = config.data_dir();
    let path = data_dir.join("ledger.redb");
    // Opening a path with no file would create an empty store there.
    if !path.exists() {
        bail!(
            "no store at {}: the node has not run with this config",
            path.display()
        );
    }
    let StoreSizes {
        head,
        committed,
        tables,
    } = Store::open(&path)
        .and_then(|store| store.sizes())
        .map_err(|error| describe_failure(&error.into(), &data_dir))?;
    let file_bytes = std::fs::metadata(&path)
        .with_context(|| format!("reading the size of {}", path.display()))?
        .len();
    let per_tx = |bytes: u64| match committed {
        0 => "-".to_owned(),
        _ => format!("{:.0}", bytes as f64 / committed as f64),
    };
    println!(
        "{}: head {head}, {committed} transactions committed",
        path.display()
    );
    println!(
        "{:<20} {:>12} {:>11} {:>13} {:>15} {:>15} {:>15} {:>15}",
        "table",
        "rows",
        "leaf pages",
        "branch pages",
        "stored bytes",
        "bookkeeping",
        "unused",
        "bytes per tx"
    );
    for table in &tables {
        println!(
            "{:<20} {:>12} {:>11} {:>13} {:>15} {:>15} {:>15} {:>15}",
            table.name,
            table.rows,
            table.leaf_pages,
            table.branch_pages,
            table.stored_bytes,
            table.metadata_bytes,
            table.fragmented_bytes,
            per_tx(table.total_bytes())
        );
    }
    let in_tables: u64 = tables.iter().map(|table| table.total_bytes()).sum();
    println!(
        "tables: {in_tables} bytes ({} per transaction) of the file's {file_bytes} ({} per transaction); the rest is free pages and redb's allocator state",
        per_tx(in_tables),
        per_tx(file_bytes)
    );
    Ok(())
}

/// Logs to stdout at the configured level, and keeps the consensus engine's reason should it
/// stop itself ([`EngineFailureLog`], filtered on its own so it sees errors at any log level).
fn init_logging(level: &str) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let engine_failures = tracing_subscriber::filter::filter_fn(EngineFailureLog::wants);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_filter(filter),
        )
        .with(EngineFailureLog.with_filter(engine_failures))
        .init();
}
