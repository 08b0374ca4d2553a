//! The node's HTTP JSON API (axum).
//!
//! Clients submit signed transactions (admitted by [`crate::admission`] into the mempool), wait
//! for their commit, fetch receipts that a court verifies offline, read blocks and certified
//! headers, and read any state record with a proof against the head's certified state root.
//! `GET /openapi.json` describes every route; `GET /metrics` serves Prometheus metrics.
//!
//! Errors are always `{"error": {"code": "<stable code>", "message": "..."}}`: 400 for a request
//! that does not parse, 404 for something the node does not have, 408 `body_timeout` for a body
//! that does not arrive in time, 413 for an oversize body or transaction, 422 for a rule refusal
//! (the code is [`Rejection::code`]), 503 when the node is busy, has too many connections or its
//! mempool is full (with `Retry-After`), 500 when its storage fails.
//!
//! # Limits
//!
//! Every resource a client can make the node hold has a bound, so hostile or broken clients cost
//! bounded memory and cannot stop the node serving others (consensus and gossip use their own
//! ports and never wait on the API):
//!
//! | what | limit | beyond it |
//! | --- | --- | --- |
//! | open connections | [`CONNECTIONS_MAX`] | accepted, answered 503 `too_many_connections`, closed |
//! | reading a request head (also an idle keep-alive connection) | [`HEADER_READ_TIMEOUT`] | connection closed |
//! | a request head's bytes | [`HEAD_BYTES_MAX`] | 431, connection closed |
//! | reading a request body | [`BODY_READ_TIMEOUT`] | 408 `body_timeout`, connection closed |
//! | bodies being read at once | [`BODY_READS_MAX`] | 503 `busy` |
//! | a body's bytes | [`BODY_BYTES_MAX`] | 413 `too_large`, connection closed |
//! | requests served at once | [`CONCURRENT_REQUESTS_MAX`] | 503 `busy` |
//! | submissions waiting for their commit | [`WAITERS_MAX`] | 503 `busy` |
//! | a request's handling | [`REQUEST_TIMEOUT`] ([`SUBMIT_TIMEOUT`]) | 503 `timeout` |
//! | a response the client does not read | [`SEND_STALL_TIMEOUT`] without progress | connection closed |
//!
//! So the memory clients can make the API hold is bounded: about 15 KiB per connection (a
//! partial head of up to [`HEAD_BYTES_MAX`] in hyper's buffer; measured), so about 60 MiB for
//! [`CONNECTIONS_MAX`], `+ BODY_READS_MAX × BODY_BYTES_MAX` (16 MiB of bodies being read)
//! `+ CONCURRENT_REQUESTS_MAX × BODY_BYTES_MAX` (128 MiB at most of requests being handled),
//! plus responses queued to clients that read slowly, each sent or dropped within
//! [`SEND_STALL_TIMEOUT`] of its last progress. `docs/RELIABILITY.md` has the figures measured.
//! The connection and slow-client limits are [`ConnectionLimits`], the load limits
//! [`ApiLimits`]; tests shorten them.
//!
//! [`Rejection::code`]: ledger_core::rejection::Rejection::code

mod body;
mod chain;
mod error;
mod metrics;
mod openapi;
mod server;
mod state_query;
mod transactions;

pub use chain::{BlockAnswer, StatusAnswer};
pub use error::ApiError;
pub use metrics::METRICS_CONTENT_TYPE;
pub use openapi::OPENAPI_JSON;
pub use state_query::StateAnswer;
pub use transactions::{TxState, TxStatus, BATCH_TXS_MAX};

use crate::consensus::app::Committed;
use crate::mempool::Mempool;
use crate::runner::NetworkView;
use crate::store::Store;
use anyhow::Context as _;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use ledger_core::genesis::Genesis;
use ledger_core::tx::TX_BYTES_MAX;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch, Semaphore};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

/// The largest request body: a transaction's JSON form. Hex and decimal JSON roughly double
/// the canonical encoding's digests, keys and signatures, so four times [`TX_BYTES_MAX`] admits
/// every transaction whose encoding fits, and the encoded size is then checked exactly.
pub const BODY_BYTES_MAX: usize = 4 * TX_BYTES_MAX;
/// How long any request except a waiting submission may take before the node answers 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `POST /v1/transactions?wait=true` waits for the commit when no `timeout_ms` is given.
pub const WAIT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// The longest wait a client may ask for with `timeout_ms`.
pub const WAIT_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// The time limit of a submission: the longest wait plus time to admit the transaction.
pub const SUBMIT_TIMEOUT: Duration = Duration::from_secs(WAIT_TIMEOUT_MAX.as_secs() + 10);
/// The most requests served at once; further ones are refused at once with 503 `busy`.
pub const CONCURRENT_REQUESTS_MAX: usize = 512;
/// The most submissions waiting for their commit at once (each holds a request slot), kept
/// below [`CONCURRENT_REQUESTS_MAX`] so waiting clients can never starve reads.
pub const WAITERS_MAX: usize = 256;
/// How long a graceful shutdown waits for in-flight requests before closing their connections.
pub const SHUTDOWN_DRAIN_TIMEOUT: Duration = Duration::from_secs(15);
/// What `Retry-After` says, in seconds, when the node is busy or its mempool full.
pub const RETRY_AFTER_SECS: u64 = 1;
/// The most connections open at once. Beyond it a connection is accepted, answered 503
/// `too_many_connections` and closed, so a client learns why at once instead of waiting in the
/// kernel's backlog. A consortium's clients (its members' applications, courts, the CLI) need far
/// fewer; a held connection costs about 11 KiB idle and 15 KiB with a partial head (measured,
/// `docs/RELIABILITY.md`), so a flood of connections costs the node at most about 60 MiB. The
/// node lowers the bound when the process may open too few files (see [`FILES_RESERVED`]).
pub const CONNECTIONS_MAX: usize = 4096;
/// File descriptors kept for everything but API connections (the store, consensus and gossip
/// sockets, logs): the API holds at most the process's open-files limit minus this many.
pub const FILES_RESERVED: usize = 512;
/// How long a client may take to send a request head, counted from when the node waits for it:
/// from the connection's start, or from the previous response on a kept-alive connection, so it
/// also closes idle connections. A real client sends a head in one write; ten seconds leaves
/// room for a slow network and closes a slowloris client (a head a byte at a time) soon.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers) a connection buffers; larger ones are
/// answered 431. Our routes need a few hundred bytes; 8 KiB is the smallest buffer hyper allows
/// and the usual limit of web servers. A connection holding a partial head costs about 15 KiB
/// in all (measured), so this bounds what slowloris heads can make the node hold.
pub const HEAD_BYTES_MAX: usize = 8 * 1024;
/// How long a request body may take to arrive once its head has. [`BODY_BYTES_MAX`] in ten
/// seconds is 26 KB/s, far below any real link.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// The most request bodies read at once. Bodies are read before a request takes one of the
/// [`CONCURRENT_REQUESTS_MAX`] slots, so clients sending slowly hold these, not the slots reads
/// and waiting submissions need; 64 bodies of [`BODY_BYTES_MAX`] are 16 MiB.
pub const BODY_READS_MAX: usize = 64;
/// How long a response may make no progress towards a client that does not read it before the
/// connection is closed, freeing the response's memory.
pub const SEND_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's clock, Unix milliseconds (the same function the consensus application uses).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    genesis: Arc<Genesis>,
    mempool: Arc<Mutex<Mempool>>,
    committed: broadcast::Sender<Committed>,
    clock_ms: Clock,
    metrics: metrics::Metrics,
    waiters: Arc<Semaphore>,
    requests: Arc<Semaphore>,
    body_reads: Arc<Semaphore>,
    connection_limits: ConnectionLimits,
    shutdown: watch::Sender<bool>,
    /// Peers, sync and gossip of a running node; absent for an API over a bare store (tests).
    network: Option<NetworkView>,
}

/// The API's load limits; [`ApiLimits::default`] has [`CONCURRENT_REQUESTS_MAX`] and
/// [`WAITERS_MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// The most requests served at once; further ones are refused with 503 `busy`.
    pub concurrent_requests: usize,
    /// The most submissions waiting for their commit at once; keep it below
    /// `concurrent_requests`, since each waiter holds a request slot.
    pub waiters: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            concurrent_requests: CONCURRENT_REQUESTS_MAX,
            waiters: WAITERS_MAX,
        }
    }
}

/// The limits on connections and on clients that send or read slowly;
/// [`ConnectionLimits::default`] has [`CONNECTIONS_MAX`], [`HEADER_READ_TIMEOUT`],
/// [`BODY_READ_TIMEOUT`], [`BODY_READS_MAX`] and [`SEND_STALL_TIMEOUT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections open at once; further ones are answered 503 `too_many_connections`
    /// and closed.
    pub connections: usize,
    /// How long a request head may take to arrive, and how long a connection may stay idle.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive once its head has.
    pub body_read_timeout: Duration,
    /// The most request bodies read at once; further requests with a body answer 503 `busy`.
    pub body_reads: usize,
    /// How long a response may make no progress before its connection is closed.
    pub send_stall_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            connections: CONNECTIONS_MAX,
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            body_reads: BODY_READS_MAX,
            send_stall_timeout: SEND_STALL_TIMEOUT,
        }
    }
}

impl ApiState {
    /// The API over a node's store, genesis and mempool. `committed` is the runner's
    /// announcement channel (`NodeHandle::committed`): waiting submissions subscribe to it.
    pub fn new(
        store: Arc<Store>,
        genesis: Arc<Genesis>,
        mempool: Arc<Mutex<Mempool>>,
        committed: broadcast::Sender<Committed>,
        clock_ms: Clock,
    ) -> ApiState {
        ApiState::with_limits(
            store,
            genesis,
            mempool,
            committed,
            clock_ms,
            ApiLimits::default(),
        )
    }

    /// [`ApiState::new`] with other load limits.
    pub fn with_limits(
        store: Arc<Store>,
        genesis: Arc<Genesis>,
        mempool: Arc<Mutex<Mempool>>,
        committed: broadcast::Sender<Committed>,
        clock_ms: Clock,
        limits: ApiLimits,
    ) -> ApiState {
        let metrics = metrics::Metrics::new(store.clone(), mempool.clone());
        ApiState {
            inner: Arc::new(Inner {
                store,
                genesis,
                mempool,
                committed,
                clock_ms,
                metrics,
                waiters: Arc::new(Semaphore::new(limits.waiters)),
                requests: Arc::new(Semaphore::new(limits.concurrent_requests)),
                body_reads: Arc::new(Semaphore::new(BODY_READS_MAX)),
                connection_limits: ConnectionLimits::default(),
                shutdown: watch::Sender::new(false),
                network: None,
            }),
        }
    }

    /// Connects the API to its node's network: admitted transactions are gossiped, and
    /// `/v1/status` reports peers and sync. Call before serving.
    pub fn with_network(mut self, network: NetworkView) -> ApiState {
        Arc::get_mut(&mut self.inner)
            .expect("the network is connected before the API state is shared")
            .network = Some(network);
        self
    }

    /// Replaces the [`ConnectionLimits`] (tests shorten the timeouts). Call before serving.
    pub fn with_connection_limits(mut self, limits: ConnectionLimits) -> ApiState {
        assert!(limits.connections > 0 && limits.body_reads > 0);
        let inner = Arc::get_mut(&mut self.inner)
            .expect("the connection limits are set before the API state is shared");
        inner.body_reads = Arc::new(Semaphore::new(limits.body_reads));
        inner.connection_limits = limits;
        self
    }

    /// Tells every waiting submission to answer now (with status `pending`), so that a graceful
    /// shutdown does not wait out their timeouts. [`serve_on`] calls it when its signal fires.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    fn now_ms(&self) -> u64 {
        (self.inner.clock_ms)()
    }
}

/// One route: its method, its path (axum and OpenAPI syntax agree: `/v1/blocks/{height}`), its
/// time limit and its handler.
struct RouteEntry {
    method: Method,
    path: &'static str,
    timeout: Duration,
    handler: MethodRouter<ApiState>,
}

fn entry<H, T>(method: Method, path: &'static str, handler: H) -> RouteEntry
where
    H: Handler<T, ApiState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("routes use standard methods");
    RouteEntry {
        method,
        path,
        timeout: REQUEST_TIMEOUT,
        handler: on(filter, handler),
    }
}

/// Every route, the one table both [`router`] and [`routes`] are built from.
fn route_table() -> Vec<RouteEntry> {
    use chain::*;
    use state_query::*;
    use transactions::*;
    let get = || Method::GET;
    vec![
        RouteEntry {
            timeout: SUBMIT_TIMEOUT,
            ..entry(Method::POST, "/v1/transactions", submit)
        },
        RouteEntry {
            timeout: SUBMIT_TIMEOUT,
            ..entry(Method::POST, "/v1/transactions/batch", submit_batch)
        },
        entry(get(), "/v1/transactions/{id}", transaction),
        entry(get(), "/v1/transactions/{id}/receipt", receipt),
        entry(get(), "/v1/blocks/{height}", block),
        entry(get(), "/v1/headers/latest", latest_header),
        entry(get(), "/v1/headers/{height}", header),
        entry(get(), "/v1/state/{key}", state_by_key),
        entry(get(), "/v1/works/{content_hash}", work),
        entry(get(), "/v1/assets/{asset}", asset),
        entry(get(), "/v1/pledges/{id}", pledge),
        entry(get(), "/v1/evidence/{hash}", evidence),
        entry(get(), "/v1/parties/{id}", party),
        entry(get(), "/v1/status", status),
        entry(get(), "/metrics", metrics::metrics),
        entry(get(), "/openapi.json", openapi::openapi),
    ]
}

/// Every (method, path) the router serves; the OpenAPI test checks the document against it.
pub fn routes() -> Vec<(Method, &'static str)> {
    route_table()
        .into_iter()
        .map(|route| (route.method, route.path))
        .collect()
}

/// The API's router with its limits: bodies read whole first ([`BODY_BYTES_MAX`] within the
/// state's body read timeout, at most its `body_reads` at once), then per-route time limits
/// ([`REQUEST_TIMEOUT`], [`SUBMIT_TIMEOUT`] for submissions) and at most
/// [`CONCURRENT_REQUESTS_MAX`] requests at once (load beyond that is shed with 503), counted
/// across every router made from the same state.
pub fn router(state: ApiState) -> Router {
    let mut router = Router::new();
    for route in route_table() {
        let timeout = ServiceBuilder::new()
            .layer(HandleErrorLayer::new(error::layer_error))
            .timeout(route.timeout);
        router = router.route(route.path, route.handler.layer(timeout));
    }
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(error::layer_error))
        .load_shed()
        .layer(GlobalConcurrencyLimitLayer::with_semaphore(
            state.inner.requests.clone(),
        ));
    router
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(limits)
        // Outermost, so a body arriving slowly holds a body read, not a request slot.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::read_body,
        ))
        .with_state(state)
}

/// Serves the API on `listen` until SIGINT or SIGTERM, then shuts down gracefully (in-flight
/// requests finish; waiting submissions answer `pending` at once).
pub async fn serve(listen: SocketAddr, state: ApiState) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the HTTP API to {listen}"))?;
    serve_on(listener, state, shutdown_signal()).await
}

/// Serves the API on a bound listener until `shutdown` completes, then shuts down gracefully:
/// no new connections, waiting submissions answer at once, in-flight requests finish (for at
/// most [`SHUTDOWN_DRAIN_TIMEOUT`]). Connections are bounded and timed by the state's
/// [`ConnectionLimits`]. For a node that owns its shutdown signal (and for tests on an
/// ephemeral port).
pub async fn serve_on(
    listener: TcpListener,
    state: ApiState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let address = listener
        .local_addr()
        .context("the API listener's address")?;
    let limits = state.inner.connection_limits;
    tracing::info!(%address, ?limits, "HTTP API listening");
    server::serve_connections(listener, state, shutdown).await;
    Ok(())
}

/// Completes on SIGINT, or SIGTERM on Unix.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// Runs blocking work (store reads, signature checks) off the async executor.
async fn blocking<T, F>(work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ApiError::internal(format!("a worker task failed: {error}")))?
}
