//! Helpers shared by the API tests: a real store holding a test chain's blocks (committed the
//! way the node commits them), the API router over it, and requests sent with
//! `tower::ServiceExt::oneshot` (no network).

#![allow(dead_code)] // Each test file uses a different subset.

#[allow(unused_imports)]
pub use crate::store_common::commit_height;
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use ipledger_node::api::{router, ApiState};
use ipledger_node::consensus::app::Committed;
use ipledger_node::mempool::Mempool;
use ipledger_node::store::Store;
use ledger_core::crypto::Digest;
#[allow(unused_imports)] // Re-exported for whichever test file needs them.
pub use ledger_core::testkit::txs::{enroll, patent, record_patent, register_work, work};
use ledger_core::testkit::{TestChain, TEST_GENESIS_TIME_MS};
use ledger_core::tx::{Action, PledgeTerms, SignedTx};
use ledger_core::types::{AssetId, EvidenceKind, Money};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use tokio::sync::broadcast;
use tower::ServiceExt;

/// The API clock in tests: well after every test block.
pub const NOW_MS: u64 = TEST_GENESIS_TIME_MS + 1_000_000;

/// A store with a chain's blocks, and the API over it.
pub struct Harness {
    /// The chain the store mirrors; build further blocks on it, then [`Harness::commit_next`].
    pub chain: TestChain,
    /// The store.
    pub store: Arc<Store>,
    /// The mempool the API admits into.
    pub mempool: Arc<Mutex<Mempool>>,
    /// The runner's commit announcements, sent by hand in tests.
    pub committed: broadcast::Sender<Committed>,
    /// The API state.
    pub state: ApiState,
    _dir: TempDir,
}

impl Harness {
    /// A harness over `chain`, with every block of it committed to a fresh store.
    pub fn new(chain: TestChain) -> Harness {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = Store::open(&dir.path().join("ledger.redb")).expect("a new store opens");
        store
            .init_genesis(&chain.genesis)
            .expect("genesis is written");
        let store = Arc::new(store);
        for height in 1..=chain.height() {
            commit_height(&store, &chain, height);
        }
        let mempool = Arc::new(Mutex::new(Mempool::default()));
        let (committed, _) = broadcast::channel(16);
        let state = ApiState::new(
            store.clone(),
            Arc::new(chain.genesis.clone()),
            mempool.clone(),
            committed.clone(),
            Arc::new(|| NOW_MS),
        );
        Harness {
            chain,
            store,
            mempool,
            committed,
            state,
            _dir: dir,
        }
    }

    /// A harness over [`busy_chain`].
    pub fn busy() -> Harness {
        Harness::new(busy_chain())
    }

    /// The router.
    pub fn router(&self) -> Router {
        router(self.state.clone())
    }

    /// Commits the chain's next block (built with `chain.commit`) to the store.
    pub fn commit_next(&self) {
        let height = self.store.head_height().unwrap() + 1;
        commit_height(&self.store, &self.chain, height);
    }

    /// What the node does once a block is decided: commits the chain's next block (built with
    /// `chain.commit`) to the store, drops `leaving_mempool` from the mempool and announces the
    /// block's transactions `committed` to waiting clients.
    pub fn commit_and_announce(&self, committed: &[Digest], leaving_mempool: &[Digest]) {
        self.commit_next();
        let height = self.store.head_height().unwrap();
        self.mempool
            .lock()
            .unwrap()
            .remove(&leaving_mempool.iter().copied().collect());
        self.committed
            .send(Committed {
                height,
                tx_ids: Arc::new(committed.to_vec()),
            })
            .unwrap();
    }

    /// Whether the mempool holds `id`.
    pub fn pooled(&self, id: &Digest) -> bool {
        self.mempool.lock().unwrap().contains(id)
    }

    /// Sends a request and returns its status and JSON body (`Value::Null` for an empty or
    /// non-JSON body).
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, Value) {
        call(self.router(), method, uri, body).await
    }

    /// `GET uri`.
    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, None).await
    }

    /// `POST /v1/transactions` with `tx` as JSON, after `query` (e.g. `?wait=true`).
    pub async fn submit(&self, tx: &SignedTx, query: &str) -> (StatusCode, Value) {
        let body = serde_json::to_vec(tx).unwrap();
        self.call(
            Method::POST,
            &format!("/v1/transactions{query}"),
            Some(body),
        )
        .await
    }
}

/// Sends one request to `router`.
pub async fn call(
    router: Router,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, Value) {
    let (status, _, bytes) = call_raw(router, method, uri, body).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

/// Sends one request to `router` and returns status, headers and body bytes.
pub async fn call_raw(
    router: Router,
    method: Method,
    uri: &str,
    body: Option<Vec<u8>>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map(Body::from).unwrap_or_else(Body::empty))
        .unwrap();
    let response = router.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("the body reads");
    (status, headers, bytes.to_vec())
}

/// A pledge of `assets` by `pledgor` to bank-a, signed by pledgor, bank and trading center.
pub fn register_pledge(chain: &mut TestChain, assets: Vec<AssetId>, pledgor: &str) -> SignedTx {
    let terms = PledgeTerms {
        assets,
        pledgor: pledgor.into(),
        pledgee: "bank-a".into(),
        registrar: "trading-center".into(),
        secured_amount: Money {
            minor_units: 100_000_000,
            currency: "CNY".into(),
        },
        maturity_ms: TEST_GENESIS_TIME_MS + 3_600_000,
        first_rank: false,
        valuations: Vec::new(),
    };
    chain.tx(
        Action::RegisterPledge(terms),
        &[pledgor, "bank-a", "trading-center"],
    )
}

/// An evidence attestation by the court.
pub fn attest(chain: &mut TestChain, content: &[u8]) -> SignedTx {
    let action = Action::AttestEvidence {
        attestor: "court".into(),
        evidence_hash: Digest::sha256(content),
        kind: EvidenceKind::Document,
        case_ref: Some("(2026)京01民初1号".into()),
        related_asset: Some(work("song")),
    };
    chain.tx(action, &["court"])
}

/// A four-validator chain: alice and bob enrolled (block 1); works song and novel by alice,
/// film by bob, patent ZL1 by bob, evidence "exhibit-1" (block 2); a pledge of song by alice to
/// bank-a (block 3). Returns the chain; the pledge id is `chain.blocks[2].txs[0].id()`.
pub fn busy_chain() -> TestChain {
    let mut chain = TestChain::new(4);
    let txs = vec![enroll(&mut chain, "alice"), enroll(&mut chain, "bob")];
    assert!(chain.commit(txs).iter().all(Result::is_ok));
    let txs = vec![
        register_work(&mut chain, "song", "alice"),
        register_work(&mut chain, "novel", "alice"),
        register_work(&mut chain, "film", "bob"),
        record_patent(&mut chain, "ZL1", "bob"),
        attest(&mut chain, b"exhibit-1"),
    ];
    let outcomes = chain.commit(txs);
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    let tx = register_pledge(&mut chain, vec![work("song")], "alice");
    chain.apply(tx).expect("pledge registered");
    chain
}

/// The stable code of an error answer.
pub fn code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error answer: {body}"))
}
