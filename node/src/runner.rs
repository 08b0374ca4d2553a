//! Starting a node: the store, the consensus engine with its network, and the application loop.

use crate::consensus::app::{Committed, ConsensusApp};
use crate::consensus::codec::BorshCodec;
use crate::consensus::context::{Address, IpledgerContext};
use crate::consensus::signing::{ConsensusSigner, ConsensusVerifier};
use crate::mempool::Mempool;
use crate::store::Store;
use anyhow::{Context as _, Result};
use ledger_core::crypto::{PublicKey, SigningKey};
use ledger_core::genesis::Genesis;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig, P2pConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::types::codec::Codec as _;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkIdentity, RequestContext,
    SyncContext, WalContext,
};
use malachitebft_config::DiscoveryConfig;
use malachitebft_signing::Signer as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// How often a node tells its peers its height, so a lagging node notices within a second.
pub const SYNC_STATUS_INTERVAL_MS: u64 = 1_000;
/// Capacity of the committed-block announcement channel.
pub const COMMITTED_CHANNEL_CAPACITY: usize = 1_024;

/// What a node needs to start.
pub struct NodeSetup {
    /// A name for logs and metrics.
    pub moniker: String,
    /// The genesis.
    pub genesis: Arc<Genesis>,
    /// The node's consensus key (also its libp2p identity).
    pub node_key: Arc<SigningKey>,
    /// Directory for the store and the engine's write-ahead log.
    pub data_dir: PathBuf,
    /// libp2p listen address, e.g. `/ip4/127.0.0.1/tcp/26656`.
    pub listen_addr: String,
    /// The other validators: libp2p address (e.g. `/ip4/10.0.0.2/tcp/26656`) and node key. The
    /// key fixes the peer id, so only the nodes the genesis names are accepted.
    pub peers: Vec<(String, PublicKey)>,
    /// Whether this node votes; otherwise it follows as a full node.
    pub validator: bool,
    /// The clock, in Unix milliseconds (tests may skew it).
    pub clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// A running node.
pub struct NodeHandle {
    /// The application loop; it ends only with an error.
    pub app: JoinHandle<Result<()>>,
    /// The engine's actors.
    pub engine: EngineHandle,
    /// The store, for queries.
    pub store: Arc<Store>,
    /// Pending transactions.
    pub mempool: Arc<Mutex<Mempool>>,
    /// Announcements of committed blocks.
    pub committed: broadcast::Sender<Committed>,
}

impl NodeHandle {
    /// Stops the engine and the application loop, and waits until the engine's actors (its
    /// write-ahead log included) have let go of their files, so the node can start again in the
    /// same process.
    pub async fn stop(self) {
        if let Err(error) = self
            .engine
            .actor
            .kill_and_wait(Some(ENGINE_STOP_TIMEOUT))
            .await
        {
            tracing::warn!(%error, "the consensus engine did not stop cleanly");
        }
        self.app.abort();
        self.engine.handle.abort();
        let _ = self.engine.handle.await;
        let _ = self.app.await;
    }
}

/// How long stopping waits for the engine's actors.
pub const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine configuration: persistent peers only (the consortium is closed), no discovery,
/// TCP, status updates every second.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    moniker: String,
    consensus: ConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }
    fn consensus(&self) -> &ConsensusConfig {
        &self.consensus
    }
    fn consensus_mut(&mut self) -> &mut ConsensusConfig {
        &mut self.consensus
    }
    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }
    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn engine_config(setup: &NodeSetup) -> Result<EngineConfig> {
    let listen_addr = setup
        .listen_addr
        .parse()
        .with_context(|| format!("listen address {:?}", setup.listen_addr))?;
    let persistent_peers = setup
        .peers
        .iter()
        .map(|(address, key)| {
            let with_id = format!("{address}/p2p/{}", peer_id(key)?);
            with_id
                .parse()
                .with_context(|| format!("peer address {with_id:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let p2p = P2pConfig {
        listen_addr,
        persistent_peers,
        persistent_peers_only: true,
        discovery: DiscoveryConfig {
            enabled: false,
            ..DiscoveryConfig::default()
        },
        ..P2pConfig::default()
    };
    let consensus = ConsensusConfig {
        p2p,
        ..ConsensusConfig::default()
    };
    let value_sync = ValueSyncConfig {
        enabled: true,
        status_update_interval: Duration::from_millis(SYNC_STATUS_INTERVAL_MS),
        ..ValueSyncConfig::default()
    };
    Ok(EngineConfig {
        moniker: setup.moniker.clone(),
        consensus,
        value_sync,
    })
}

/// The libp2p peer id of a node key: the engine's network identity is the node's Ed25519 key.
pub fn peer_id(key: &PublicKey) -> Result<libp2p_identity::PeerId> {
    let PublicKey::Ed25519(bytes) = key;
    let ed25519 = libp2p_identity::ed25519::PublicKey::try_from_bytes(bytes)
        .context("node key is not a valid Ed25519 key")?;
    Ok(libp2p_identity::PublicKey::from(ed25519).to_peer_id())
}

/// Opens the store (initialising it from the genesis on first start), starts the engine and the
/// application loop.
pub async fn start(setup: NodeSetup) -> Result<NodeHandle> {
    std::fs::create_dir_all(&setup.data_dir)
        .with_context(|| format!("creating {}", setup.data_dir.display()))?;
    let store = Arc::new(Store::open(&setup.data_dir.join("ledger.redb"))?);
    store.init_genesis(&setup.genesis)?;
    let chain_id: Arc<str> = setup.genesis.chain_id.as_str().into();
    let ctx = IpledgerContext {
        chain_id: chain_id.clone(),
    };
    let signer = Arc::new(ConsensusSigner::new(
        setup.node_key.clone(),
        chain_id.clone(),
    ));
    let address: Address = signer.address();
    let keypair = Keypair::ed25519_from_bytes(setup.node_key.seed())
        .context("libp2p identity from the node key")?;
    let identity = if setup.validator {
        let peer_id = keypair.public().to_peer_id().to_bytes();
        let proof = signer
            .sign_validator_proof(address.0.to_vec(), peer_id)
            .await
            .map_err(|error| anyhow::anyhow!("signing the validator proof: {error:?}"))?;
        let proof_bytes = BorshCodec
            .encode(&proof)
            .context("encoding the validator proof")?;
        NetworkIdentity::new_validator(
            setup.moniker.clone(),
            keypair,
            address.to_string(),
            proof_bytes,
        )
    } else {
        NetworkIdentity::new(setup.moniker.clone(), keypair, None)
    };
    let verifier = Box::new(ConsensusVerifier::new(chain_id.clone()));
    let consensus_ctx = if setup.validator {
        let engine_signer = Box::new(ConsensusSigner::new(
            setup.node_key.clone(),
            chain_id.clone(),
        ));
        ConsensusContext::new_validator(address, verifier, engine_signer)
    } else {
        ConsensusContext::new_full_node(address, verifier)
    };
    let wal_path = setup.data_dir.join("wal").join("consensus.wal");
    let (mut channels, engine) = EngineBuilder::new(ctx, engine_config(&setup)?)
        .with_default_wal(WalContext::new(wal_path, BorshCodec))
        .with_default_network(NetworkContext::new(identity, BorshCodec))
        .with_default_consensus(consensus_ctx)
        .with_default_sync(SyncContext::new(BorshCodec))
        .with_default_request(RequestContext::new(100))
        .build()
        .await
        .map_err(|error| anyhow::anyhow!("starting the consensus engine: {error:?}"))?;
    let mempool = Arc::new(Mutex::new(Mempool::default()));
    let (committed, _) = broadcast::channel(COMMITTED_CHANNEL_CAPACITY);
    let app = ConsensusApp::new(
        setup.genesis.clone(),
        store.clone(),
        signer,
        mempool.clone(),
        committed.clone(),
        setup.clock_ms.clone(),
    );
    let app = tokio::spawn(async move { app.run(&mut channels).await });
    Ok(NodeHandle {
        app,
        engine,
        store,
        mempool,
        committed,
    })
}
