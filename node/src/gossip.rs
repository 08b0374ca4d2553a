//! Transaction gossip: a transaction admitted at one node reaches every validator's mempool, so
//! whichever validator proposes next can include it.
//!
//! The engine's network carries only consensus traffic, so gossip runs its own libp2p swarm (the
//! libp2p version the engine brings) with the node's key as its identity: TCP (noise, yamux) on
//! the configured p2p address `/ip4/H/tcp/P`, whose UDP port of the same number is the consensus
//! engine's QUIC ([`crate::runner::engine_quic_address`]), and gossipsub on one topic per chain.
//! Only the peers in the allow-list (the validators the ledger admits) may connect; anyone else
//! is refused at the connection.
//!
//! A message is a batch of canonically encoded transactions (PROTOCOL.md, "Transaction
//! gossip"). Batches are cut every [`GOSSIP_FLUSH_INTERVAL`] or at [`GOSSIP_BATCH_TXS_MAX`]
//! transactions / [`GOSSIP_BATCH_BYTES_MAX`] bytes. Received transactions go through the same
//! admission as submitted ones (signatures, rules); gossip is best effort and never trusted: a
//! transaction it loses still waits in its first node's mempool.

use crate::p2p_socket;
use crate::runner::peer_id;
use crate::supervision::Supervisor;
use anyhow::{Context as _, Result};
use futures::{FutureExt as _, StreamExt as _};
use ledger_core::crypto::{Digest, PublicKey, SigningKey};
use ledger_core::encoding;
use ledger_core::tx::{SignedTx, TX_BYTES_MAX};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{allow_block_list, gossipsub, Multiaddr, PeerId, Swarm};
use prometheus_client::registry::Registry;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The most transactions in one gossip message.
pub const GOSSIP_BATCH_TXS_MAX: usize = 512;
/// The most encoded transaction bytes in one gossip message.
pub const GOSSIP_BATCH_BYTES_MAX: usize = 1 << 20;
/// How long an admitted transaction waits for others to share its message.
pub const GOSSIP_FLUSH_INTERVAL: Duration = Duration::from_millis(20);
/// Admitted transactions waiting to be gossiped; past this, gossip of new ones is skipped (they
/// still wait in this node's mempool) and counted.
pub const GOSSIP_OUTBOUND_CAPACITY: usize = 20_000;
/// Received batches waiting for admission; past this, received batches are dropped.
pub const GOSSIP_INBOUND_BATCHES_MAX: usize = 256;
/// The prefix of gossipsub's metrics on `/metrics`, e.g.
/// `ipledger_gossipsub_topic_msg_recv_counts_unfiltered_total` (every message received,
/// duplicates included) beside `ipledger_gossipsub_topic_msg_recv_counts_total` (new ones).
pub const GOSSIP_METRICS_PREFIX: &str = "ipledger_gossipsub";
/// How often missing peers are dialled again.
pub const GOSSIP_REDIAL_INTERVAL: Duration = Duration::from_secs(2);

/// The gossipsub topic of a chain's transactions.
pub fn gossip_topic(chain_id: &str) -> gossipsub::IdentTopic {
    gossipsub::IdentTopic::new(format!("ipledger/txs/v1/{chain_id}"))
}

/// The gossip address of a configured p2p address: the address itself, which must name a TCP
/// port (a `/p2p/…` suffix is dropped; gossip appends the peer id it expects).
pub fn gossip_tcp_address(configured: &Multiaddr) -> Result<Multiaddr> {
    let mut gossip = Multiaddr::empty();
    let mut tcp = false;
    for protocol in configured.iter() {
        match protocol {
            Protocol::P2p(_) => {}
            other => {
                tcp |= matches!(other, Protocol::Tcp(_));
                gossip.push(other);
            }
        }
    }
    anyhow::ensure!(tcp, "{configured} names no TCP port");
    Ok(gossip)
}

/// A peer gossip may talk to: its node key and its p2p address (from the node's config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipPeer {
    /// The peer's configured p2p address (`/ip4/H/tcp/P`); gossip dials it over TCP.
    pub address: Multiaddr,
    /// The peer's node key, which fixes its peer id.
    pub key: PublicKey,
}

/// Received transactions, as one gossip message carried them.
#[derive(Debug)]
pub struct ReceivedBatch {
    /// The peer that sent it to us.
    pub from: PeerId,
    /// The transactions, each decoded strictly; undecodable messages never get here.
    pub txs: Vec<SignedTx>,
}

/// What the gossip task reports for `/v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipStatus {
    /// Connected peers.
    pub connected: Vec<PeerId>,
    /// Received batches dropped because admission was behind.
    pub inbound_dropped: u64,
}

/// A running gossip swarm.
pub struct TxGossip {
    sender: GossipSender,
    allow_list: AllowList,
    status: watch::Receiver<GossipStatus>,
    task: JoinHandle<()>,
    listen: Multiaddr,
    metrics: Arc<Registry>,
}

/// How long stopping waits for the gossip listener to close: a node restarted in the same
/// process needs the TCP port back.
pub const GOSSIP_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Queues admitted transactions for gossip; cheap to clone.
#[derive(Clone)]
pub struct GossipSender {
    outbound: mpsc::Sender<SignedTx>,
    dropped: Arc<AtomicU64>,
}

impl GossipSender {
    /// Queues an admitted transaction for gossip. Never waits: if the queue is full the
    /// transaction is not gossiped (it still waits in this node's mempool) and the miss counted.
    pub fn publish(&self, tx: SignedTx) {
        if self.outbound.try_send(tx).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many admitted transactions were not gossiped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Changes the peers gossip accepts and dials; cheap to clone.
#[derive(Clone)]
pub struct AllowList {
    updates: mpsc::UnboundedSender<Vec<GossipPeer>>,
}

impl AllowList {
    /// Replaces the peers gossip accepts and dials; connections to others close.
    pub fn set(&self, peers: Vec<GossipPeer>) {
        // After the swarm stopped there is nothing left to allow.
        let _ = self.updates.send(peers);
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    allowed: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    gossipsub: gossipsub::Behaviour,
}

impl TxGossip {
    /// Starts the swarm listening on the TCP address `listen` (the configured p2p address) and
    /// dialling `peers`; received batches go to `inbound`. The swarm's task runs under
    /// `supervisor`: should it panic, the node stops.
    pub fn start(
        node_key: &SigningKey,
        chain_id: &str,
        listen: &Multiaddr,
        peers: Vec<GossipPeer>,
        inbound: mpsc::Sender<ReceivedBatch>,
        supervisor: &Supervisor,
    ) -> Result<TxGossip> {
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(node_key.seed())
            .context("gossip identity from the node key")?;
        let mut metrics = Registry::with_prefix(GOSSIP_METRICS_PREFIX);
        let config = gossipsub::ConfigBuilder::default()
            .max_transmit_size(GOSSIP_BATCH_BYTES_MAX + 64 * 1024)
            .message_id_fn(|message| {
                gossipsub::MessageId::from(Digest::sha256(&message.data).as_bytes().to_vec())
            })
            .validation_mode(gossipsub::ValidationMode::Strict)
            .heartbeat_interval(Duration::from_secs(1))
            // No mesh: every validator dials every other, and a publisher floods all its
            // peers (gossipsub's `flood_publish`, on by default). Forwarding over a mesh only
            // sends each batch again to peers that already have it, and each copy is
            // decrypted, signature-checked and hashed before it is dropped as a duplicate
            // (docs/PERFORMANCE.md, "Gossip without forwarding"). A peer that missed a batch
            // still fetches it: each heartbeat advertises recent message ids to every peer
            // outside the (empty) mesh, which asks for the ones it lacks.
            .mesh_outbound_min(0)
            .mesh_n_low(0)
            .mesh_n(0)
            .mesh_n_high(0)
            // A peer that dials us may still GRAFT us into its mesh (a node of another
            // configuration, or a lying one), and gossipsub accepts an outbound peer's GRAFT
            // past `mesh_n_high`. The next heartbeat prunes it, keeping the best
            // `retain_scores` peers; that count must not exceed the mesh we keep, or the
            // pruning step's `len - retain_scores` underflows and the gossip task panics.
            .retain_scores(0)
            .build()
            .context("gossipsub configuration")?;
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default().nodelay(true),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .context("gossip transport")?
            .with_dns()
            .context("gossip DNS resolution")?
            .with_behaviour(|key| {
                let gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    config,
                )?
                .with_metrics(&mut metrics, gossipsub::MetricsConfig::default());
                Ok(Behaviour {
                    allowed: allow_block_list::Behaviour::default(),
                    gossipsub,
                })
            })
            .context("gossip behaviour")?
            .with_swarm_config(|config| {
                config.with_idle_connection_timeout(Duration::from_secs(3600))
            })
            .build();
        let topic = gossip_topic(chain_id);
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&topic)
            .context("subscribing to the transaction topic")?;
        let listen = gossip_tcp_address(listen)?;
        swarm
            .listen_on(listen.clone())
            .with_context(|| format!("gossip cannot listen on {listen}"))?;
        let (outbound, outbound_rx) = mpsc::channel(GOSSIP_OUTBOUND_CAPACITY);
        let (updates, updates_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(GossipStatus::default());
        let mut task = GossipTask {
            swarm,
            topic,
            peers: BTreeMap::new(),
            connected: HashSet::new(),
            batch: Vec::new(),
            batch_count: 0,
            inbound,
            status: status_tx,
            inbound_dropped: 0,
        };
        task.set_allowed(peers)?;
        let task = supervisor.spawn(
            "transaction gossip task",
            task.run(outbound_rx, updates_rx).map(Ok),
        );
        info!(%listen, "transaction gossip listening");
        Ok(TxGossip {
            sender: GossipSender {
                outbound,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            allow_list: AllowList { updates },
            status,
            task,
            listen,
            metrics: Arc::new(metrics),
        })
    }

    /// gossipsub's own counters (peers, messages and bytes per topic, duplicates received),
    /// which `/metrics` serves after the node's.
    pub fn metrics(&self) -> Arc<Registry> {
        Arc::clone(&self.metrics)
    }

    /// Where admitted transactions go to be gossiped.
    pub fn sender(&self) -> GossipSender {
        self.sender.clone()
    }

    /// The handle that changes who gossip talks to.
    pub fn allow_list(&self) -> AllowList {
        self.allow_list.clone()
    }

    /// The connected peers and drop counts, updated as they change.
    pub fn status(&self) -> watch::Receiver<GossipStatus> {
        self.status.clone()
    }

    /// Stops the swarm and waits (up to [`GOSSIP_STOP_TIMEOUT`]) until its TCP port can be
    /// listened on again.
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        p2p_socket::wait_until_free(&self.listen, GOSSIP_STOP_TIMEOUT, "the gossip socket").await;
    }
}

struct GossipTask {
    swarm: Swarm<Behaviour>,
    topic: gossipsub::IdentTopic,
    /// Allowed peers by peer id, with the address to dial.
    peers: BTreeMap<PeerId, Multiaddr>,
    connected: HashSet<PeerId>,
    /// The pending message's transactions, each in its canonical encoding, back to back.
    batch: Vec<u8>,
    batch_count: usize,
    inbound: mpsc::Sender<ReceivedBatch>,
    status: watch::Sender<GossipStatus>,
    inbound_dropped: u64,
}

/// However the task ends (stopped, or a panic in the swarm), it reports no peers connected:
/// `/v1/status` must not show gossip peers a node no longer talks to.
impl Drop for GossipTask {
    fn drop(&mut self) {
        self.connected.clear();
        self.publish_status();
    }
}

impl GossipTask {
    async fn run(
        mut self,
        mut outbound: mpsc::Receiver<SignedTx>,
        mut allowed: mpsc::UnboundedReceiver<Vec<GossipPeer>>,
    ) {
        let mut flush = tokio::time::interval(GOSSIP_FLUSH_INTERVAL);
        let mut redial = tokio::time::interval(GOSSIP_REDIAL_INTERVAL);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_event(event),
                Some(tx) = outbound.recv() => self.add_to_batch(tx),
                Some(peers) = allowed.recv() => {
                    if let Err(error) = self.set_allowed(peers) {
                        warn!(%error, "gossip allow-list not updated");
                    }
                }
                _ = flush.tick() => self.flush(),
                _ = redial.tick() => self.dial_missing(),
            }
        }
    }

    fn set_allowed(&mut self, peers: Vec<GossipPeer>) -> Result<()> {
        let mut next = BTreeMap::new();
        for peer in peers {
            next.insert(peer_id(&peer.key)?, gossip_tcp_address(&peer.address)?);
        }
        let behaviour = self.swarm.behaviour_mut();
        for gone in self.peers.keys().filter(|id| !next.contains_key(id)) {
            behaviour.allowed.disallow_peer(*gone);
        }
        for id in next.keys() {
            behaviour.allowed.allow_peer(*id);
        }
        self.peers = next;
        self.dial_missing();
        Ok(())
    }

    fn dial_missing(&mut self) {
        let missing: Vec<(PeerId, Multiaddr)> = self
            .peers
            .iter()
            .filter(|(id, _)| !self.connected.contains(id))
            .map(|(id, address)| (*id, address.clone()))
            .collect();
        for (id, address) in missing {
            let address = address.with(Protocol::P2p(id));
            if let Err(error) = self.swarm.dial(address.clone()) {
                debug!(%address, %error, "gossip dial failed");
            }
        }
    }

    fn add_to_batch(&mut self, tx: SignedTx) {
        let encoded = tx.encode();
        assert!(
            encoded.len() <= TX_BYTES_MAX,
            "admitted transactions fit the limit"
        );
        if self.batch.len() + encoded.len() > GOSSIP_BATCH_BYTES_MAX {
            self.flush();
        }
        self.batch.extend_from_slice(&encoded);
        self.batch_count += 1;
        if self.batch_count >= GOSSIP_BATCH_TXS_MAX {
            self.flush();
        }
    }

    /// Publishes the pending transactions as one message: `enc(Vec<SignedTx>)`, which is the
    /// 8-byte little-endian count followed by the transactions' own encodings (PROTOCOL.md
    /// section 15), so each transaction is encoded once.
    fn flush(&mut self) {
        if self.batch_count == 0 {
            return;
        }
        let count = std::mem::take(&mut self.batch_count);
        let mut message = Vec::with_capacity(8 + self.batch.len());
        message.extend_from_slice(&(count as u64).to_le_bytes());
        message.append(&mut self.batch);
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), message)
        {
            Ok(_) => debug!(count, "gossiped transactions"),
            Err(error) => debug!(count, %error, "transactions not gossiped"),
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                self.connected.insert(peer_id);
                self.publish_status();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.connected.remove(&peer_id);
                self.publish_status();
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            })) => self.on_message(propagation_source, &message.data),
            _ => {}
        }
    }

    fn on_message(&mut self, from: PeerId, data: &[u8]) {
        let txs: Vec<SignedTx> = match encoding::decode(data, "transaction gossip batch") {
            Ok(txs) => txs,
            Err(error) => {
                warn!(%from, %error, "undecodable gossip message dropped");
                return;
            }
        };
        if txs.len() > GOSSIP_BATCH_TXS_MAX {
            warn!(%from, count = txs.len(), "gossip batch over the limit dropped");
            return;
        }
        if self.inbound.try_send(ReceivedBatch { from, txs }).is_err() {
            self.inbound_dropped += 1;
            self.publish_status();
        }
    }

    fn publish_status(&self) {
        let mut connected: Vec<PeerId> = self.connected.iter().copied().collect();
        connected.sort();
        self.status.send_replace(GossipStatus {
            connected,
            inbound_dropped: self.inbound_dropped,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOL.md section 15: a batch is a count then the signed transactions.
    #[test]
    fn a_gossip_batch_is_as_protocol_md_describes() {
        let hex_text = include_str!("../../docs/vectors/signed_tx_register_work.hex");
        let tx_bytes = hex::decode(hex_text.trim()).expect("vector is hex");
        let tx = SignedTx::decode(&tx_bytes).expect("vector decodes");
        let batch = encoding::encode(&vec![tx.clone()]);
        let mut expected = vec![1, 0, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(&tx_bytes);
        assert_eq!(batch, expected);
        let decoded: Vec<SignedTx> = encoding::decode(&batch, "batch").expect("decodes");
        assert_eq!(decoded, vec![tx]);
    }

    /// A peer that keeps a mesh (gossipsub's defaults: another configuration, an older node, or
    /// a lying one) and GRAFTs us is heard, and our heartbeat prunes it from our mesh, which
    /// must stay empty. gossipsub's pruning step underflows there unless `retain_scores` is 0,
    /// and that panic ended the gossip task; a stopped task reports no peers.
    #[tokio::test]
    async fn gossip_takes_batches_from_a_peer_that_grafts_a_mesh() {
        let chain_id = "gossip-grafting-peer";
        let topic = gossip_topic(chain_id);
        let peer_key = SigningKey::from_seed([7; 32]);
        let identity = libp2p::identity::Keypair::ed25519_from_bytes(peer_key.seed())
            .expect("an Ed25519 seed is a libp2p identity");
        // gossipsub's defaults (a mesh of 6, signed messages), with a faster heartbeat so that
        // it grafts us soon.
        let default_mesh = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(Duration::from_millis(200))
            .heartbeat_initial_delay(Duration::from_millis(200))
            .build()
            .expect("gossipsub configuration");
        let mut peer = libp2p::SwarmBuilder::with_existing_identity(identity)
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("TCP transport")
            .with_behaviour(|key| {
                let behaviour: Result<gossipsub::Behaviour, _> = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    default_mesh,
                );
                behaviour.map_err(Box::<dyn std::error::Error + Send + Sync>::from)
            })
            .expect("gossipsub with its default mesh")
            .build();
        peer.behaviour_mut().subscribe(&topic).expect("subscribes");
        peer.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("an address"))
            .expect("listens");
        let peer_address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = peer.select_next_some().await {
                break address;
            }
        };
        let (inbound, mut received) = mpsc::channel(GOSSIP_INBOUND_BATCHES_MAX);
        let supervisor = Supervisor::new(|| ());
        let gossip = TxGossip::start(
            &SigningKey::from_seed([8; 32]),
            chain_id,
            &"/ip4/127.0.0.1/tcp/0".parse().expect("an address"),
            vec![GossipPeer {
                address: peer_address,
                key: peer_key.public_key(),
            }],
            inbound,
            &supervisor,
        )
        .expect("gossip starts");
        let hex_text = include_str!("../../docs/vectors/signed_tx_register_work.hex");
        let tx = SignedTx::decode(&hex::decode(hex_text.trim()).expect("vector is hex"))
            .expect("vector decodes");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        // Each message differs (one more copy of the transaction each time), so none is a
        // duplicate. Publishing fails until the peer has heard that we subscribe.
        let mut published = 0;
        let mut pruned = false;
        loop {
            tokio::select! {
                _ = peer.select_next_some() => {}
                _ = tick.tick() => {
                    if let Some(failure) = supervisor.failures().borrow().as_ref() {
                        panic!("the node would have stopped: {failure:#}");
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "within 60 s: pruned the grafted peer {pruned}, batches published \
                         {published}, none received after the pruning"
                    );
                    pruned = pruned || excess_mesh_peers_removed(&gossip.metrics()) > 0;
                    let message = encoding::encode(&vec![tx.clone(); published + 1]);
                    if peer.behaviour_mut().publish(topic.clone(), message).is_ok() {
                        published += 1;
                    }
                }
                Some(batch) = received.recv() => {
                    assert_eq!(batch.from, *peer.local_peer_id());
                    assert!(batch.txs.iter().all(|received| *received == tx));
                    if pruned {
                        break;
                    }
                }
            }
        }
        let status = gossip.status();
        assert_eq!(status.borrow().connected, vec![*peer.local_peer_id()]);
        gossip.stop().await;
        assert!(
            status.borrow().connected.is_empty(),
            "a stopped gossip task reports no peers"
        );
        assert!(
            supervisor.failures().borrow().is_none(),
            "stopping gossip is no failure"
        );
    }

    /// How many peers gossipsub's heartbeat removed from the mesh as excess, by its metrics.
    fn excess_mesh_peers_removed(metrics: &Registry) -> u64 {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, metrics).expect("metrics encode");
        let name = format!("{GOSSIP_METRICS_PREFIX}_mesh_peer_churn_events_total{{");
        text.lines()
            .filter(|line| line.starts_with(&name) && line.contains("reason=\"Excess\""))
            .map(|line| {
                let value = line.rsplit(' ').next().expect("a sample has a value");
                value.parse::<u64>().expect("a counter")
            })
            .sum()
    }

    #[test]
    fn gossip_runs_on_the_configured_tcp_address() {
        let configured: Multiaddr = "/ip4/10.0.0.2/tcp/26656".parse().unwrap();
        assert_eq!(gossip_tcp_address(&configured).unwrap(), configured);
        let with_id: Multiaddr =
            "/dns/bank-a.example/tcp/4000/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                .parse()
                .unwrap();
        assert_eq!(
            gossip_tcp_address(&with_id).unwrap().to_string(),
            "/dns/bank-a.example/tcp/4000"
        );
        let quic: Multiaddr = "/ip4/10.0.0.2/udp/26656/quic-v1".parse().unwrap();
        assert!(gossip_tcp_address(&quic).is_err());
    }
}
