//! Starting a node: the store, the consensus engine with its network, and the application loop.

use crate::admission;
use crate::consensus::app::{
    head_admitted_keys, AppReports, Committed, ConsensusApp, ProposalChecks, SyncReport,
};
use crate::consensus::codec::BorshCodec;
use crate::consensus::context::{Address, IpledgerContext};
use crate::consensus::misbehaviour::MisbehaviourLog;
use crate::consensus::signing::{ConsensusSigner, ConsensusVerifier};
use crate::gossip::{
    GossipPeer, GossipSender, GossipStatus, ReceivedBatch, TxGossip, GOSSIP_INBOUND_BATCHES_MAX,
};
use crate::mempool::Mempool;
use crate::p2p_socket;
use crate::pruner::{pruning_phase, StatePruner};
use crate::store::wal::{check_wal, WalReport};
use crate::store::{Store, StoreError};
use crate::supervision::{Failure, Supervisor};
use anyhow::{Context as _, Result};
use futures::FutureExt as _;
use ipledger_genesis::ByzantineConfig;
use ledger_core::crypto::{PublicKey, SigningKey};
use ledger_core::genesis::Genesis;
use malachitebft_app_channel::app::config::{
    ConsensusConfig, NodeConfig, P2pConfig, ValueSyncConfig,
};
use malachitebft_app_channel::app::engine::network::{
    Multiaddr, NetworkMsg, NetworkStateDump, PersistentPeersOp,
};
use malachitebft_app_channel::app::types::codec::Codec as _;
use malachitebft_app_channel::app::types::Keypair;
use malachitebft_app_channel::{
    Channels, ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkIdentity,
    NetworkRequest, RequestContext, SyncContext, WalContext,
};
use malachitebft_config::DiscoveryConfig;
use malachitebft_signing::Signer as _;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// How often a node tells its peers its height, so a lagging node notices within a second.
pub const SYNC_STATUS_INTERVAL_MS: u64 = 1_000;
/// Capacity of the committed-block announcement channel.
pub const COMMITTED_CHANNEL_CAPACITY: usize = 1_024;
/// Capacity of the engine's request channels.
pub const ENGINE_REQUESTS_QUEUED_MAX: usize = 100;

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
    /// The store's page cache (`[store] cache_mib`).
    pub store_cache_bytes: usize,
    /// The p2p address to listen on, e.g. `/ip4/127.0.0.1/tcp/26656`: port 26656 for TCP
    /// (transaction gossip) and for UDP (the consensus engine's QUIC, see
    /// [`engine_quic_address`]).
    pub listen_addr: String,
    /// The other validators: p2p address (e.g. `/ip4/10.0.0.2/tcp/26656`, the same form and the
    /// same two ports) and node key. The key fixes the peer id, so only the nodes the genesis
    /// names are accepted.
    pub peers: Vec<(String, PublicKey)>,
    /// Whether this node votes; otherwise it follows as a full node.
    pub validator: bool,
    /// The clock, in Unix milliseconds (tests may skew it).
    pub clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
}

/// A running node.
pub struct NodeHandle {
    /// The application loop; it ends only with an error, which fails the node.
    pub app: JoinHandle<()>,
    /// The engine's actors.
    pub engine: EngineHandle,
    /// The store, for queries.
    pub store: Arc<Store>,
    /// Pending transactions.
    pub mempool: Arc<Mutex<Mempool>>,
    /// Announcements of committed blocks.
    pub committed: broadcast::Sender<Committed>,
    /// What the node knows of its peers and of sync, for `/v1/status`.
    pub network: NetworkView,
    /// The misbehaviour the engine reported (also in `<data_dir>/misbehaviour.jsonl`).
    pub misbehaviour: Arc<MisbehaviourLog>,
    /// How this validator lies, if it was built and configured to (fault tests only).
    #[cfg(feature = "byzantine")]
    pub liar: Option<Arc<crate::consensus::byzantine::Liar>>,
    /// Why the node stopped by itself, once it has: the application loop failed (a failed
    /// durable write, a broken invariant, or the engine stopping itself), or one of the node's
    /// other tasks failed or panicked (see [`crate::supervision`]). The engine was stopped before
    /// this was set, so the node signs nothing more.
    pub failure: watch::Receiver<Failure>,
    /// Told by [`NodeHandle::stop`], so the tasks ending then are not taken for a failure.
    supervisor: Supervisor,
    gossip: TxGossip,
    helpers: Vec<JoinHandle<()>>,
    /// Prunes replaced state-tree nodes behind the commits; stopped after the application.
    pruner: StatePruner,
    /// The engine's QUIC listen address, whose UDP port [`NodeHandle::stop`] waits to be free.
    engine_listen: Multiaddr,
    /// Written when the node stops cleanly ([`CLEAN_STOP_MARKER`]).
    clean_stop_marker: PathBuf,
}

/// A node's view of its network, for the API: consensus peers (asked of the engine), gossip
/// peers, sync progress, and the way out for admitted transactions.
#[derive(Clone)]
pub struct NetworkView {
    net_requests: mpsc::Sender<NetworkRequest>,
    /// Gossip's connected peers and drop counts.
    pub gossip_status: watch::Receiver<GossipStatus>,
    /// Sync progress.
    pub sync: watch::Receiver<SyncReport>,
    /// Spreads transactions admitted through the API to the other validators.
    pub gossip: GossipSender,
    /// How other validators' proposals were checked (streamed or complete).
    pub proposal_checks: Arc<ProposalChecks>,
    /// gossipsub's counters, served by `/metrics`.
    pub gossip_metrics: Arc<prometheus_client::registry::Registry>,
}

/// How long a status request waits for the engine's network actor.
pub const NETWORK_DUMP_TIMEOUT: Duration = Duration::from_secs(2);

impl NetworkView {
    /// The engine's view of its peers, or `None` if its network actor does not answer in time.
    pub async fn engine_peers(&self) -> Option<NetworkStateDump> {
        let request = NetworkRequest::dump_state(&self.net_requests);
        match tokio::time::timeout(NETWORK_DUMP_TIMEOUT, request).await {
            Ok(Ok(dump)) => dump,
            _ => None,
        }
    }
}

impl NodeHandle {
    /// Stops the engine and the application loop, and waits until the engine's actors (its
    /// write-ahead log included) have let go of their files and its QUIC socket, and gossip of
    /// its TCP port, so the node can start again in the same process.
    pub async fn stop(self) {
        self.supervisor.stopping();
        // The engine's network actor first, and gracefully: only its `post_stop` shuts its libp2p
        // swarm down. Killed, the swarm task would hold the UDP port until its next event, which
        // may never come (TCP listeners share a port, so this did not show before QUIC).
        let mut network_closed = false;
        for child in self.engine.actor.get_children() {
            if child.is_message_type_of::<NetworkMsg<IpledgerContext>>() == Some(true) {
                let stopped = child
                    .stop_and_wait(Some("node stopping".into()), Some(ENGINE_STOP_TIMEOUT))
                    .await;
                match stopped {
                    Ok(()) => network_closed = true,
                    Err(error) => {
                        warn!(%error, "the consensus engine's network did not stop cleanly")
                    }
                }
            }
        }
        // The rest of the engine stops with its network (the node actor stops itself when a
        // child ends); the kill makes sure. An engine already gone cannot be killed, which is
        // no error as long as it is gone.
        let killed = self
            .engine
            .actor
            .kill_and_wait(Some(ENGINE_STOP_TIMEOUT))
            .await;
        let mut engine = self.engine.handle;
        if tokio::time::timeout(ENGINE_STOP_TIMEOUT, &mut engine)
            .await
            .is_err()
        {
            warn!(error = ?killed.err(), "the consensus engine did not stop cleanly");
            engine.abort();
            let _ = engine.await;
        }
        self.app.abort();
        let _ = self.app.await;
        // Waits for a batch being pruned to commit, so the store is released when this returns.
        let pruner = self.pruner;
        if tokio::task::spawn_blocking(move || drop(pruner))
            .await
            .is_err()
        {
            warn!("stopping the state pruner panicked");
        }
        for helper in self.helpers {
            helper.abort();
            let _ = helper.await;
        }
        self.gossip.stop().await;
        // A lying validator's real network actor sits unlinked behind Malachite's Byzantine proxy
        // (0.8.2), out of reach: its socket is freed when the process ends. Lying validators are
        // never restarted in a process.
        #[cfg(feature = "byzantine")]
        let (wait_for_engine_port, network_closed) = match self.liar {
            Some(_) => (false, false),
            None => (true, network_closed),
        };
        #[cfg(not(feature = "byzantine"))]
        let wait_for_engine_port = true;
        if wait_for_engine_port {
            p2p_socket::wait_until_free(
                &self.engine_listen,
                ENGINE_STOP_TIMEOUT,
                "the consensus engine's UDP socket",
            )
            .await;
        }
        // The engine closed its connections, so the next start need not wait for peers to drop
        // them (ENGINE_CONNECT_DELAY_AFTER_CRASH).
        if network_closed {
            if let Err(error) = std::fs::write(&self.clean_stop_marker, b"") {
                warn!(%error, path = %self.clean_stop_marker.display(), "clean stop not recorded");
            }
        }
    }
}

/// How long stopping waits for the engine's actors.
pub const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node that did not stop cleanly (killed, crashed) waits before its engine connects
/// to its peers. A killed node's QUIC connections are not reset as TCP's are: a peer drops its
/// end only after the idle timeout (Malachite sets 300 ms, at least three probe timeouts), or on
/// the stateless reset the restarted node (same key, so same reset tokens) answers its packets
/// with. A new connection opened before that is the peer's second one to this node, and
/// gossipsub sends its topic subscriptions only on a peer's first connection: the restarted node
/// would never learn them and could publish no vote.
pub const ENGINE_CONNECT_DELAY_AFTER_CRASH: Duration = Duration::from_secs(1);

/// The file in the data directory that says the last run stopped cleanly (its engine closed its
/// connections); removed at start, written by [`NodeHandle::stop`].
const CLEAN_STOP_MARKER: &str = "engine-stopped-cleanly";

/// The engine configuration: persistent peers only (the consortium is closed), no discovery,
/// QUIC, status updates every second.
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

/// A configured peer: its p2p address as configured (gossip dials it over TCP), and the engine's
/// QUIC address of it with the peer id of its key appended, so the engine accepts only that key
/// there.
#[derive(Clone, Debug)]
struct ConfiguredPeer {
    key: PublicKey,
    address: Multiaddr,
    address_with_id: Multiaddr,
}

/// The consensus engine's address for a configured p2p address: the same host, UDP instead of
/// TCP on the same port number, QUIC v1 (`/ip4/H/tcp/P` → `/ip4/H/udp/P/quic-v1`). Malachite
/// picks its transport from the listen address, so this is what puts the engine on QUIC; the
/// TCP port of the same number is transaction gossip's. A `/p2p/…` suffix is dropped.
pub fn engine_quic_address(configured: &Multiaddr) -> Result<Multiaddr> {
    use libp2p::multiaddr::Protocol;
    let mut quic = Multiaddr::empty();
    let mut port = None;
    for protocol in configured.iter() {
        match protocol {
            Protocol::Tcp(tcp) => port = Some(tcp),
            Protocol::P2p(_) => {}
            other => quic.push(other),
        }
    }
    let port = port.with_context(|| format!("{configured} names no TCP port"))?;
    quic.push(Protocol::Udp(port));
    quic.push(Protocol::QuicV1);
    Ok(quic)
}

fn configured_peers(setup: &NodeSetup) -> Result<Vec<ConfiguredPeer>> {
    setup
        .peers
        .iter()
        .map(|(address, key)| {
            let address: Multiaddr = address
                .parse()
                .with_context(|| format!("peer address {address:?}"))?;
            let with_id = format!("{}/p2p/{}", engine_quic_address(&address)?, peer_id(key)?);
            let address_with_id = with_id
                .parse()
                .with_context(|| format!("peer address {with_id:?}"))?;
            Ok(ConfiguredPeer {
                key: *key,
                address,
                address_with_id,
            })
        })
        .collect()
}

/// The configured peers the ledger admits.
fn admitted_peers<'a>(
    peers: &'a [ConfiguredPeer],
    admitted: &'a BTreeSet<PublicKey>,
) -> impl Iterator<Item = &'a ConfiguredPeer> {
    peers.iter().filter(|peer| admitted.contains(&peer.key))
}

/// The engine's configuration, without persistent peers: `follow_admitted_peers` adds them once
/// the engine is built.
fn engine_config(setup: &NodeSetup) -> Result<EngineConfig> {
    let listen_addr = engine_quic_address(
        &setup
            .listen_addr
            .parse()
            .with_context(|| format!("listen address {:?}", setup.listen_addr))?,
    )?;
    let p2p = P2pConfig {
        listen_addr,
        persistent_peers: Vec::new(),
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

/// What building the engine takes.
pub struct EngineParts<Config> {
    /// The consensus context.
    pub ctx: IpledgerContext,
    /// The engine's configuration.
    pub config: Config,
    /// The write-ahead log.
    pub wal: WalContext<BorshCodec>,
    /// The node's network identity.
    pub identity: NetworkIdentity,
    /// The consensus actor's address, verifier and signer.
    pub consensus: ConsensusContext<IpledgerContext>,
}

/// Builds an honest engine.
async fn build_engine(
    engine: EngineParts<EngineConfig>,
) -> Result<(Channels<IpledgerContext>, EngineHandle)> {
    EngineBuilder::new(engine.ctx, engine.config)
        .with_default_wal(engine.wal)
        .with_default_network(NetworkContext::new(engine.identity, BorshCodec))
        .with_default_consensus(engine.consensus)
        .with_default_sync(SyncContext::new(BorshCodec))
        .with_default_request(RequestContext::new(ENGINE_REQUESTS_QUEUED_MAX))
        .build()
        .await
        .map_err(|error| anyhow::anyhow!("starting the consensus engine: {error:?}"))
}

/// Opens the store (initialising it from the genesis on first start), starts the engine and the
/// application loop.
pub async fn start(setup: NodeSetup) -> Result<NodeHandle> {
    start_with(setup, None).await
}

/// [`start`], lying as `byzantine` (a config's `[byzantine]` section) says. A node built without
/// the `byzantine` feature refuses to start with one.
pub async fn start_with(
    setup: NodeSetup,
    byzantine: Option<&ByzantineConfig>,
) -> Result<NodeHandle> {
    #[cfg(not(feature = "byzantine"))]
    if byzantine.is_some() {
        anyhow::bail!(
            "the config has a [byzantine] section, but this node was built without the \
             `byzantine` feature (a lying validator, for fault tests only); remove the section"
        );
    }
    #[cfg(feature = "byzantine")]
    let liar = match byzantine {
        Some(config) => {
            anyhow::ensure!(setup.validator, "[byzantine] needs validator = true");
            let organisation =
                crate::consensus::byzantine::organisation_of(&setup.genesis, &setup.node_key)?;
            Some(crate::consensus::byzantine::Liar::new(
                config,
                setup.node_key.clone(),
                organisation,
            )?)
        }
        None => None,
    };
    std::fs::create_dir_all(&setup.data_dir)
        .with_context(|| format!("creating {}", setup.data_dir.display()))?;
    let store_path = setup.data_dir.join("ledger.redb");
    // Opening an existing store reads the whole file (see `Store::open`), so on a large ledger
    // the operator is told why the node is not yet serving, and for how long it was not.
    let store_bytes = std::fs::metadata(&store_path).map_or(0, |metadata| metadata.len());
    info!(
        path = %store_path.display(),
        store_mib = store_bytes >> 20,
        "opening the store: checking every page's checksum"
    );
    let opening = std::time::Instant::now();
    let store = Arc::new(Store::open_with_cache(
        &store_path,
        setup.store_cache_bytes,
    )?);
    info!(
        ms = crate::service::duration_ms(opening.elapsed()),
        "store opened and checked"
    );
    let misbehaviour = Arc::new(MisbehaviourLog::open(&setup.data_dir)?);
    store.init_genesis(&setup.genesis)?;
    let peers = configured_peers(&setup)?;
    let admitted = head_admitted_keys(&store)?;
    let initial_peers: Vec<ConfiguredPeer> = admitted_peers(&peers, &admitted).cloned().collect();
    let chain_id: Arc<str> = setup.genesis.chain_id.as_str().into();
    #[allow(unused_mut)]
    let mut ctx = IpledgerContext::new(chain_id.clone());
    #[cfg(feature = "byzantine")]
    {
        ctx.vote_faults = liar.as_ref().map(|liar| liar.votes.clone());
    }
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
    let wal_path = engine_wal_path(&setup.data_dir);
    check_engine_wal(&wal_path, store.head_height()?)?;
    // The engine starts with no persistent peers (so it dials none and refuses every peer) and
    // `follow_admitted_peers` adds them once the engine is built: over QUIC a connection can be up
    // before the consensus actor subscribes to the network, and Malachite 0.8.2 hands a peer's
    // validator proof, sent once per connection, only to subscribers already there. After a
    // crash it waits longer, for the peers to drop their connections to the previous run (see
    // ENGINE_CONNECT_DELAY_AFTER_CRASH).
    let clean_stop_marker = setup.data_dir.join(CLEAN_STOP_MARKER);
    let crashed = wal_path.exists() && !clean_stop_marker.exists();
    match std::fs::remove_file(&clean_stop_marker) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| {
                format!("removing {} before starting", clean_stop_marker.display())
            })
        }
    }
    let connect_after = if crashed {
        info!(
            delay = ?ENGINE_CONNECT_DELAY_AFTER_CRASH,
            "the previous run did not stop cleanly: the engine connects to its peers after a delay"
        );
        ENGINE_CONNECT_DELAY_AFTER_CRASH
    } else {
        Duration::ZERO
    };
    let parts = EngineParts {
        ctx,
        config: engine_config(&setup)?,
        wal: WalContext::new(wal_path, BorshCodec),
        identity,
        consensus: consensus_ctx,
    };
    // The engine only logs a listen failure and runs on deaf; a port taken is an error here.
    let engine_listen = parts.config.consensus.p2p.listen_addr.clone();
    if let Some((socket, _)) = p2p_socket::socket_address(&engine_listen) {
        std::net::UdpSocket::bind(socket)
            .with_context(|| format!("the consensus engine cannot listen on {engine_listen}"))?;
    }
    #[allow(unused_mut)]
    let mut helpers = Vec::new();
    #[cfg(feature = "byzantine")]
    let (mut channels, engine) = match &liar {
        Some(liar) => {
            let (channels, engine, streaming) =
                crate::consensus::byzantine::build_engine(liar, signer.clone(), parts).await?;
            helpers.extend(streaming);
            (channels, engine)
        }
        None => build_engine(parts).await?,
    };
    #[cfg(not(feature = "byzantine"))]
    let (mut channels, engine) = build_engine(parts).await?;
    let supervisor = Supervisor::new({
        let engine = engine.actor.clone();
        move || engine.kill()
    });
    let pruner = StatePruner::start(
        store.clone(),
        pruning_phase(&admitted, &setup.node_key.public_key()),
        supervisor.clone(),
    )
    .context("starting the state-pruning thread")?;
    let mempool = Arc::new(Mutex::new(Mempool::default()));
    let (inbound, inbound_rx) = mpsc::channel(GOSSIP_INBOUND_BATCHES_MAX);
    let gossip = TxGossip::start(
        &setup.node_key,
        &setup.genesis.chain_id,
        &setup
            .listen_addr
            .parse()
            .with_context(|| format!("listen address {:?}", setup.listen_addr))?,
        gossip_peers(&initial_peers),
        inbound,
        &supervisor,
    )?;
    let (committed, _) = broadcast::channel(COMMITTED_CHANNEL_CAPACITY);
    let reports = AppReports {
        committed: committed.clone(),
        admitted: watch::Sender::new(admitted),
        sync: watch::Sender::new(SyncReport::default()),
        checks: Arc::default(),
        misbehaviour: misbehaviour.clone(),
    };
    let network = NetworkView {
        net_requests: channels.net_requests.clone(),
        gossip_status: gossip.status(),
        sync: reports.sync.subscribe(),
        gossip: gossip.sender(),
        proposal_checks: reports.checks.clone(),
        gossip_metrics: gossip.metrics(),
    };
    helpers.extend([
        supervisor.spawn(
            "admission of gossiped transactions",
            admit_gossiped(
                inbound_rx,
                store.clone(),
                setup.genesis.clone(),
                mempool.clone(),
                setup.clock_ms.clone(),
            )
            .map(Ok),
        ),
        supervisor.spawn(
            "follower of the admitted validators",
            follow_admitted_peers(
                reports.admitted.subscribe(),
                peers,
                connect_after,
                channels.net_requests.clone(),
                gossip.allow_list(),
            )
            .map(Ok),
        ),
    ]);
    let app = ConsensusApp::new(
        setup.genesis.clone(),
        store.clone(),
        signer,
        mempool.clone(),
        reports,
        setup.clock_ms.clone(),
        pruner.trigger(),
    );
    #[cfg(feature = "byzantine")]
    let app = app.with_liar(liar.clone());
    let app = supervisor.spawn(
        "application loop",
        async move { app.run(&mut channels).await },
    );
    Ok(NodeHandle {
        app,
        engine,
        store,
        mempool,
        committed,
        network,
        misbehaviour,
        #[cfg(feature = "byzantine")]
        liar,
        failure: supervisor.failures(),
        supervisor,
        gossip,
        helpers,
        pruner,
        engine_listen,
        clean_stop_marker,
    })
}

/// The consensus engine's write-ahead log in a node's data directory.
pub fn engine_wal_path(data_dir: &Path) -> PathBuf {
    data_dir.join("wal").join("consensus.wal")
}

/// Checks the engine's write-ahead log at `path` against the store's `head` before the engine
/// opens it, decoding each entry as the engine will replay it (see [`crate::store::wal`]).
pub fn check_engine_wal(path: &Path, head: u64) -> Result<WalReport, StoreError> {
    check_wal(path, head, &wal_entry_height)
}

/// The height of one write-ahead log entry, or why it does not decode.
fn wal_entry_height(data: &[u8]) -> std::result::Result<Option<u64>, String> {
    use malachitebft_core_consensus::Input;
    use malachitebft_core_types::{Proposal as _, Vote as _};
    // A payload's own length field sizes an allocation in the engine's decoder; it must be
    // exactly what the (checksummed, bounded) entry holds.
    const TAG_TIMEOUT: u8 = 0x02;
    if let (Some(&tag), Some(length)) = (data.first(), data.get(1..9)) {
        let length = u64::from_be_bytes(length.try_into().expect("eight bytes"));
        if tag != TAG_TIMEOUT && length != data.len() as u64 - 9 {
            return Err(format!(
                "payload length {length}, but the entry holds {} bytes after it",
                data.len() - 9
            ));
        }
    }
    let entry: Input<IpledgerContext> =
        malachitebft_engine::wal::decode_entry(&BorshCodec, data).map_err(|e| e.to_string())?;
    Ok(match entry {
        Input::Vote(vote) => Some(vote.height().0),
        Input::Proposal(proposal) => Some(proposal.height().0),
        Input::ProposedValue(value, _) => Some(value.height.0),
        Input::PolkaCertificate(certificate) => Some(certificate.height.0),
        _ => None,
    })
}

fn gossip_peers(peers: &[ConfiguredPeer]) -> Vec<GossipPeer> {
    peers
        .iter()
        .map(|peer| GossipPeer {
            address: peer.address.clone(),
            key: peer.key,
        })
        .collect()
}

/// Admits gossiped transactions, one batch at a time, off the async executor. Refusals are
/// expected (a transaction admitted at its first node may be refused here once the head moved)
/// and only logged.
async fn admit_gossiped(
    mut inbound: mpsc::Receiver<ReceivedBatch>,
    store: Arc<Store>,
    genesis: Arc<Genesis>,
    mempool: Arc<Mutex<Mempool>>,
    clock_ms: Arc<dyn Fn() -> u64 + Send + Sync>,
) {
    while let Some(batch) = inbound.recv().await {
        let from = batch.from;
        let (store, genesis, mempool) = (store.clone(), genesis.clone(), mempool.clone());
        let now = clock_ms();
        let answers = tokio::task::spawn_blocking(move || {
            admission::admit_many(&store, &genesis, &mempool, batch.txs, now)
        })
        .await;
        // A panic here is a bug in admission that a peer's batch triggered, and the same batch
        // reaches every validator: stopping the node for it (as the supervisor would) would let
        // one batch halt the network. The batch is dropped here instead, and the panic logged;
        // the API answers the same bug with a 500.
        let Ok(answers) = answers else {
            warn!("admission of a gossiped batch panicked; the batch is dropped");
            continue;
        };
        let refused = answers.iter().filter(|answer| answer.is_err()).count();
        tracing::debug!(%from, admitted = answers.len() - refused, refused, "gossiped batch admitted");
    }
}

/// Keeps the engine's persistent peers and gossip's allow-list equal to the configured peers
/// the ledger admits, as governance changes the validator set. The engine starts with none:
/// after `connect_after` it gets the admitted ones, and dials them.
async fn follow_admitted_peers(
    mut admitted: watch::Receiver<BTreeSet<PublicKey>>,
    peers: Vec<ConfiguredPeer>,
    connect_after: Duration,
    net_requests: mpsc::Sender<NetworkRequest>,
    allow_list: crate::gossip::AllowList,
) {
    let mut current: Vec<ConfiguredPeer> = Vec::new();
    tokio::time::sleep(connect_after).await;
    admitted.mark_changed();
    while admitted.changed().await.is_ok() {
        let keys = admitted.borrow_and_update().clone();
        let next: Vec<ConfiguredPeer> = admitted_peers(&peers, &keys).cloned().collect();
        let current_keys: BTreeSet<PublicKey> = current.iter().map(|peer| peer.key).collect();
        let next_keys: BTreeSet<PublicKey> = next.iter().map(|peer| peer.key).collect();
        if current_keys == next_keys {
            continue;
        }
        for peer in current.iter().filter(|peer| !next_keys.contains(&peer.key)) {
            info!(address = %peer.address, "peer no longer admitted by the ledger: disconnecting");
            update_engine_peer(
                &net_requests,
                PersistentPeersOp::Remove(peer.address_with_id.clone()),
            )
            .await;
        }
        for peer in next.iter().filter(|peer| !current_keys.contains(&peer.key)) {
            info!(address = %peer.address, "peer admitted by the ledger: connecting");
            update_engine_peer(
                &net_requests,
                PersistentPeersOp::Add(peer.address_with_id.clone()),
            )
            .await;
        }
        allow_list.set(gossip_peers(&next));
        current = next;
    }
}

async fn update_engine_peer(net_requests: &mpsc::Sender<NetworkRequest>, op: PersistentPeersOp) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let described = format!("{op:?}");
    if net_requests
        .send(NetworkRequest::UpdatePersistentPeers(op, reply))
        .await
        .is_err()
    {
        return;
    }
    match answer.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => warn!(%error, op = described, "persistent peer update refused"),
        Err(_) => warn!(
            op = described,
            "the engine's network did not answer a peer update"
        ),
    }
}

#[cfg(all(test, not(feature = "byzantine")))]
mod tests {
    use super::*;
    use ipledger_genesis::StoreConfig;
    use ledger_core::testkit::{test_genesis, test_key};

    #[test]
    fn the_engine_runs_quic_on_the_udp_port_numbered_like_the_configured_tcp_port() {
        let configured: Multiaddr = "/ip4/10.0.0.2/tcp/26656".parse().unwrap();
        let quic = engine_quic_address(&configured).unwrap();
        assert_eq!(quic.to_string(), "/ip4/10.0.0.2/udp/26656/quic-v1");
        let dns: Multiaddr = "/dns/bank-a.example/tcp/4000".parse().unwrap();
        assert_eq!(
            engine_quic_address(&dns).unwrap().to_string(),
            "/dns/bank-a.example/udp/4000/quic-v1"
        );
        let no_port: Multiaddr = "/ip4/10.0.0.2".parse().unwrap();
        assert!(engine_quic_address(&no_port).is_err());
    }

    #[tokio::test]
    async fn a_byzantine_section_is_refused_without_the_feature() {
        let dir = tempfile::tempdir().expect("temp dir");
        let setup = NodeSetup {
            moniker: "refuses-to-lie".into(),
            genesis: Arc::new(test_genesis(4)),
            node_key: Arc::new(test_key("trading-center/node")),
            data_dir: dir.path().join("data"),
            store_cache_bytes: StoreConfig::default().cache_bytes(),
            listen_addr: "/ip4/127.0.0.1/tcp/0".into(),
            peers: Vec::new(),
            validator: true,
            clock_ms: Arc::new(|| 0),
        };
        let lies = ByzantineConfig {
            equivocate_votes: ipledger_genesis::Trigger::Always,
            ..ByzantineConfig::default()
        };
        let error = start_with(setup, Some(&lies)).await.err().expect("refused");
        assert!(
            error
                .to_string()
                .contains("built without the `byzantine` feature"),
            "{error}"
        );
        assert!(
            !dir.path().join("data").exists(),
            "nothing was opened before the refusal"
        );
    }
}
