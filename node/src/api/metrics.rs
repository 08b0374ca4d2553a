//! `GET /metrics`: Prometheus metrics in the OpenMetrics text format, with `prometheus-client`
//! (the version Malachite already uses, so the node carries one copy).
//!
//! | metric | type | what |
//! | --- | --- | --- |
//! | `ipledger_height` | gauge | the committed height |
//! | `ipledger_head_time_ms` | gauge | the head block's time, Unix milliseconds |
//! | `ipledger_transactions_committed_total` | counter | transactions committed since genesis |
//! | `ipledger_mempool_transactions` | gauge | transactions waiting in the mempool |
//! | `ipledger_state_pruned_through_version` | gauge | the newest state version whose replaced tree nodes are deleted (pruning runs behind the commits; a gap to the height that keeps growing means pruning fails, and the log says why) |
//! | `ipledger_transactions_admitted_total` | counter | submissions admitted by this API |
//! | `ipledger_admission_rejections_total{code}` | counter | submissions refused, by code |
//! | `ipledger_http_connections` | gauge | HTTP connections open |
//! | `ipledger_http_connections_refused_total` | counter | connections refused over the limit |
//! | `ipledger_proposal_budget_transactions` | gauge | the most transactions this validator's next first-round proposal may hold (below the chain's limit when its checks of other validators' proposals say a full block would not be checked in half the propose timeout, or after its proposals failed to be decided in their round: the validators are overloaded) |
//! | `ipledger_commit_microseconds_per_transaction` | gauge | this validator's last durable commit of a non-empty block, per transaction (0 before the first); its early blocks are dated by it, and it rises as the store outgrows its page cache |
//! | `ipledger_check_microseconds_per_transaction` | gauge | this validator's last check of another validator's non-empty proposal, per transaction, from its first part to the verdict (0 before the first); its proposal budget holds what a check at this pace finishes in half the propose timeout |
//! | `ipledger_proposals_executed_streaming_total` | counter | other validators' proposals executed while their parts streamed in |
//! | `ipledger_proposals_executed_complete_total` | counter | other validators' proposals executed once complete |
//! | `ipledger_proposals_refused_total` | counter | proposals this node found invalid and prevoted nil on |
//! | `ipledger_proposals_built_early_total` | counter | this node's proposals built while it committed the block before them |
//! | `ipledger_proposal_signatures_reused_total` | counter | proposed transactions whose signature check was reused from the mempool |
//! | `ipledger_commit_writing_microseconds_total` | counter | time this node's block commits spent before the durable commit: waiting for the store's one writer (a pruning step may hold it), checking, inserting rows |
//! | `ipledger_commit_durable_microseconds_total` | counter | time this node's block commits spent in the store's durable commit (the dirty pages written out, fsync): its rate against the clock is the share of time the node waits on its disk with a decision unanswered |
//! | `ipledger_gossipsub_*` | | libp2p gossipsub's own metrics for the transaction gossip (peers, messages and bytes per topic; `…_topic_msg_recv_counts_unfiltered_total` counts duplicates too) |
//!
//! The chain metrics are read from the store at each scrape, so they are right after a restart;
//! the admission, connection and proposal counters count since the node started. The proposal
//! and gossip metrics exist only on a node that takes part in consensus.

use super::error::ApiError;
use super::{blocking, ApiState};
use crate::consensus::app::ProposalChecks;
use crate::mempool::Mempool;
use crate::runner::NetworkView;
use crate::store::Store;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::{Arc, Mutex};

/// The content type of the OpenMetrics text format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type CodeLabel = [(&'static str, &'static str); 1];

/// The API's metrics registry.
pub(super) struct Metrics {
    registry: Registry,
    admitted: Counter,
    rejections: Family<CodeLabel, Counter>,
    connections: Gauge,
    connections_refused: Counter,
}

impl Metrics {
    pub(super) fn new(store: Arc<Store>, mempool: Arc<Mutex<Mempool>>) -> Metrics {
        let mut registry = Registry::default();
        let admitted = Counter::default();
        let rejections = Family::<CodeLabel, Counter>::default();
        registry.register(
            "ipledger_transactions_admitted",
            "Submitted transactions admitted into the mempool by this node's API",
            admitted.clone(),
        );
        registry.register(
            "ipledger_admission_rejections",
            "Submitted transactions refused by this node's API, by stable code",
            rejections.clone(),
        );
        let connections = Gauge::default();
        let connections_refused = Counter::default();
        registry.register(
            "ipledger_http_connections",
            "HTTP API connections open",
            connections.clone(),
        );
        registry.register(
            "ipledger_http_connections_refused",
            "HTTP API connections refused because as many as allowed were open",
            connections_refused.clone(),
        );
        registry.register_collector(Box::new(ChainCollector { store, mempool }));
        Metrics {
            registry,
            admitted,
            rejections,
            connections,
            connections_refused,
        }
    }

    /// Counts an admitted submission.
    pub(super) fn admitted(&self) {
        self.admitted.inc();
    }

    /// Counts an HTTP connection opened (`+1`) or closed (`-1`).
    pub(super) fn connections_add(&self, change: i64) {
        self.connections.inc_by(change);
    }

    /// Counts an HTTP connection refused over the limit.
    pub(super) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts a refused submission under its code.
    pub(super) fn refused(&self, code: &'static str) {
        self.rejections.get_or_create(&[("code", code)]).inc();
    }

    /// The node's metrics, then its consensus and gossip metrics (`network`, absent for an API
    /// over a bare store), in one exposition.
    fn encode(&self, network: Option<&NetworkView>) -> Result<String, fmt::Error> {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)?;
        if let Some(network) = network {
            let mut proposals = Registry::default();
            proposals.register_collector(Box::new(ProposalCollector {
                checks: Arc::clone(&network.proposal_checks),
            }));
            encode_registry(&mut text, &proposals)?;
            encode_registry(&mut text, &network.gossip_metrics)?;
        }
        encode_eof(&mut text)?;
        Ok(text)
    }
}

/// Reads the chain's metrics from the store and the mempool at each scrape.
struct ChainCollector {
    store: Arc<Store>,
    mempool: Arc<Mutex<Mempool>>,
}

impl fmt::Debug for ChainCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChainCollector")
    }
}

struct ChainValues {
    height: u64,
    head_time_ms: u64,
    committed: u64,
    pruned_through: u64,
}

impl ChainCollector {
    fn read(&self) -> Result<ChainValues, String> {
        let snapshot = self.store.snapshot().map_err(|error| error.to_string())?;
        let height = snapshot.head_height().map_err(|error| error.to_string())?;
        let state = snapshot.state(height);
        let head = ledger_core::state::ledger_head(&ledger_core::state::Overlay::new(&state))
            .map_err(|error| error.to_string())?;
        Ok(ChainValues {
            height,
            head_time_ms: head.time_ms,
            committed: head.frontier.size(),
            pruned_through: snapshot
                .pruned_through()
                .map_err(|error| error.to_string())?,
        })
    }
}

impl Collector for ChainCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let values = self.read().map_err(|error| {
            tracing::error!(%error, "metrics: reading the store failed");
            fmt::Error
        })?;
        let mempool = self
            .mempool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        let gauges = [
            ("ipledger_height", "The committed height", values.height),
            (
                "ipledger_head_time_ms",
                "The head block's time, Unix milliseconds",
                values.head_time_ms,
            ),
            (
                "ipledger_mempool_transactions",
                "Transactions waiting in the mempool",
                mempool as u64,
            ),
            (
                "ipledger_state_pruned_through_version",
                "The newest state version whose replaced tree nodes are deleted",
                values.pruned_through,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value as i64);
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let committed = ConstCounter::new(values.committed);
        let metric = encoder.encode_descriptor(
            "ipledger_transactions_committed",
            "Transactions committed since genesis",
            None,
            committed.metric_type(),
        )?;
        committed.encode(metric)
    }
}

/// Reads the consensus application's proposal counters at each scrape.
#[derive(Debug)]
struct ProposalCollector {
    checks: Arc<ProposalChecks>,
}

impl Collector for ProposalCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let checks = &self.checks;
        let gauges = [
            (
                "ipledger_proposal_budget_transactions",
                "The most transactions this validator's next first-round proposal may hold",
                &checks.budget_txs,
            ),
            (
                "ipledger_commit_microseconds_per_transaction",
                "This node's last durable commit of a non-empty block, per transaction",
                &checks.commit_us_per_tx,
            ),
            (
                "ipledger_check_microseconds_per_transaction",
                "This node's last check of another validator's non-empty proposal, per transaction",
                &checks.check_us_per_tx,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(i64::try_from(value.load(Relaxed)).unwrap_or(i64::MAX));
            let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
            gauge.encode(metric)?;
        }
        let counters = [
            (
                "ipledger_proposals_executed_streaming",
                "Other validators' proposals executed while their parts streamed in",
                &checks.streamed,
            ),
            (
                "ipledger_proposals_executed_complete",
                "Other validators' proposals executed once complete",
                &checks.complete,
            ),
            (
                "ipledger_proposals_refused",
                "Proposals this node found invalid and prevoted nil on",
                &checks.refused,
            ),
            (
                "ipledger_proposals_built_early",
                "This node's proposals built while it committed the block before them",
                &checks.built_early,
            ),
            (
                "ipledger_proposal_signatures_reused",
                "Proposed transactions whose signature check was reused from the mempool",
                &checks.reused_signatures,
            ),
            (
                "ipledger_commit_writing_microseconds",
                "Time this node's block commits spent before the durable commit: waiting for the store's writer, checking, inserting rows",
                &checks.commit_writing_us,
            ),
            (
                "ipledger_commit_durable_microseconds",
                "Time this node's block commits spent in the store's durable commit (pages written out, fsync)",
                &checks.commit_durable_us,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value.load(Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// `GET /metrics`.
pub(super) async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = blocking(move || {
        state
            .inner
            .metrics
            .encode(state.inner.network.as_ref())
            .map_err(|_| ApiError::storage("encoding the metrics failed"))
    })
    .await?;
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(METRICS_CONTENT_TYPE),
    );
    Ok(response)
}
