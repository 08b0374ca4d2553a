//! `POST /v1/transactions`, `POST /v1/transactions/batch`, `GET /v1/transactions/{id}` and
//! `/receipt`, over a real store, with requests sent to the router in memory.

mod api_common;
mod store_common;
use api_common::*;
use axum::http::{header, Method, StatusCode};
use ipledger_node::api::BODY_BYTES_MAX;
use ipledger_node::mempool::Mempool;
use ledger_core::crypto::{Digest, Signature};
use ledger_core::receipt::{verify_receipt, Receipt};
use ledger_core::rules::VerifiedTx;
use ledger_core::tx::{Action, SignedTx, TxBody, TxId, TX_BYTES_MAX};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

#[tokio::test]
async fn a_valid_submission_is_accepted_and_pending_and_resubmitting_is_harmless() {
    let mut harness = Harness::busy();
    let tx = register_work(&mut harness.chain, "new-song", "bob");
    let id = tx.id().to_string();
    let (status, body) = harness.submit(&tx, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, serde_json::json!({"id": id, "status": "pending"}));
    assert!(harness.pooled(&tx.id()));

    let (status, body) = harness.submit(&tx, "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(harness.mempool.lock().unwrap().len(), 1);

    let (status, body) = harness.get(&format!("/v1/transactions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"id": id, "status": "pending"}));
}

#[tokio::test]
async fn malformed_bodies_answer_400_with_a_code() {
    let harness = Harness::busy();
    for body in [&b"{not json"[..], b"{\"body\": 1, \"signatures\": []}", b""] {
        let (status, answer) = harness
            .call(Method::POST, "/v1/transactions", Some(body.to_vec()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(code(&answer), "malformed_request");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, answer) = harness
        .call(
            Method::POST,
            "/v1/transactions?wait=maybe",
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&answer), "invalid_parameter");
    let mut chain = busy_chain();
    let tx = register_work(&mut chain, "x", "bob");
    let (status, answer) = harness.submit(&tx, "?wait=true&timeout_ms=60001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&answer), "invalid_parameter");
    assert!(harness.mempool.lock().unwrap().is_empty());
}

#[tokio::test]
async fn oversize_bodies_and_transactions_answer_413() {
    let mut harness = Harness::busy();
    // A body past the limit is refused while it is read.
    let body = vec![b' '; BODY_BYTES_MAX + 1];
    let (status, answer) = harness
        .call(Method::POST, "/v1/transactions", Some(body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "too_large");
    // A body within the limit whose transaction encodes past TX_BYTES_MAX.
    let mut tx = register_work(&mut harness.chain, "huge", "bob");
    let Action::RegisterWork { title, .. } = &mut tx.body.action else {
        unreachable!()
    };
    *title = "x".repeat(TX_BYTES_MAX);
    let (status, answer) = harness.submit(&tx, "").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "too_large");
}

#[tokio::test]
async fn rule_refusals_answer_422_with_the_rule_code() {
    let mut harness = Harness::busy();
    let mut forged = register_work(&mut harness.chain, "forged", "bob");
    let Signature::Ed25519(bytes) = &mut forged.signatures[0].signature;
    bytes[10] ^= 0x40;
    let (status, answer) = harness.submit(&forged, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(code(&answer), "bad_signature");

    let replay = harness.chain.blocks[0].txs[1].clone();
    let (status, answer) = harness.submit(&replay, "?wait=true").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(code(&answer), "already_committed");

    let again = register_work(&mut harness.chain, "film", "alice");
    let (status, answer) = harness.submit(&again, "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(code(&answer), "work_already_registered");
    assert!(harness.mempool.lock().unwrap().is_empty());

    // Each refusal is counted by code.
    let (status, _, metrics) = call_raw(harness.router(), Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    for code in [
        "bad_signature",
        "already_committed",
        "work_already_registered",
    ] {
        let line = format!("ipledger_admission_rejections_total{{code=\"{code}\"}} 1");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_full_mempool_answers_503_with_retry_after() {
    let mut harness = Harness::busy();
    {
        let mut pool = harness.mempool.lock().unwrap();
        *pool = Mempool::default();
        for n in 0..ipledger_node::mempool::MEMPOOL_TXS_MAX as u64 {
            let mut salt = [0u8; 16];
            salt[..8].copy_from_slice(&n.to_le_bytes());
            let tx = SignedTx::unsigned(TxBody {
                chain_id: "filler".into(),
                salt,
                valid_until: 0,
                action: Action::ReleasePledge {
                    pledge: Digest::sha256(b"filler"),
                },
            });
            pool.insert(VerifiedTx::verify(tx).unwrap()).unwrap();
        }
    }
    let tx = register_work(&mut harness.chain, "late", "bob");
    let body = serde_json::to_vec(&tx).unwrap();
    let (status, headers, bytes) = call_raw(
        harness.router(),
        Method::POST,
        "/v1/transactions",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&answer), "mempool_full");
}

#[tokio::test]
async fn unknown_transactions_answer_404_and_bad_ids_400() {
    let harness = Harness::busy();
    let unknown = Digest::sha256(b"nothing");
    for uri in [
        format!("/v1/transactions/{unknown}"),
        format!("/v1/transactions/{unknown}/receipt"),
    ] {
        let (status, answer) = harness.get(&uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(code(&answer), "not_found");
    }
    let (status, answer) = harness.get("/v1/transactions/sha256:xyz").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(code(&answer), "invalid_parameter");
}

#[tokio::test]
async fn committed_transactions_are_located_and_their_receipts_verify_offline() {
    let harness = Harness::busy();
    let block = &harness.chain.blocks[1];
    let tx = &block.txs[3];
    let id = tx.id();
    let (status, body) = harness.get(&format!("/v1/transactions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    // Block 1 holds two transactions, so this is leaf 2 + 3.
    assert_eq!(
        body,
        serde_json::json!({"id": id.to_string(), "status": "committed", "height": 2,
                           "index_in_block": 3, "ledger_index": 5})
    );
    // The bare hex form of an id works too.
    let bare = hex::encode(id.as_bytes());
    let (status, _) = harness.get(&format!("/v1/transactions/{bare}")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = harness.get(&format!("/v1/transactions/{id}/receipt")).await;
    assert_eq!(status, StatusCode::OK);
    let receipt: Receipt = serde_json::from_value(body).expect("a receipt");
    let verified = verify_receipt(&receipt, &harness.chain.genesis).expect("the receipt verifies");
    assert_eq!(verified.tx_id, id);
    assert_eq!(verified.height, 2);
    assert_eq!(verified.certified_height, 3);
    let mut tampered = receipt;
    tampered.leaf.time_ms += 1;
    assert!(verify_receipt(&tampered, &harness.chain.genesis).is_err());
}

#[tokio::test]
async fn waiting_submissions_answer_when_their_block_is_committed() {
    let mut harness = Harness::busy();
    let tx = register_work(&mut harness.chain, "awaited", "bob");
    let id = tx.id();
    let router = harness.router();
    let body = serde_json::to_vec(&tx).unwrap();
    let request = tokio::spawn(call(
        router,
        Method::POST,
        "/v1/transactions?wait=true",
        Some(body),
    ));
    // The node: the transaction reaches the mempool, a block with it is committed, announced.
    while !harness.pooled(&id) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // An unrelated block first: the waiting request keeps waiting.
    let other = register_work(&mut harness.chain, "other", "alice");
    assert!(harness.chain.commit(vec![other.clone()])[0].is_ok());
    harness.commit_and_announce(&[other.id()], &[]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !request.is_finished(),
        "still waiting after an unrelated block"
    );
    assert!(harness.chain.commit(vec![tx])[0].is_ok());
    harness.commit_and_announce(&[id], &[id]);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the wait ends")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"id": id.to_string(), "status": "committed", "height": 5,
                           "index_in_block": 0, "ledger_index": 9})
    );
}

#[tokio::test]
async fn a_wait_that_times_out_answers_504_pending() {
    let mut harness = Harness::busy();
    let tx = register_work(&mut harness.chain, "slow", "bob");
    let (status, body) = harness.submit(&tx, "?wait=true&timeout_ms=100").await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"id": tx.id().to_string(), "status": "pending"})
    );
    assert!(harness.pooled(&tx.id()));
}

#[tokio::test]
async fn a_waiting_transaction_dropped_by_the_proposer_answers_with_the_rule_now_refusing_it() {
    let mut harness = Harness::busy();
    let mine = register_work(&mut harness.chain, "contested", "bob");
    let id = mine.id();
    let body = serde_json::to_vec(&mine).unwrap();
    let request = tokio::spawn(call(
        harness.router(),
        Method::POST,
        "/v1/transactions?wait=true",
        Some(body),
    ));
    while !harness.pooled(&id) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Alice files the same work first (through another node); the proposer refuses bob's.
    let theirs = register_work(&mut harness.chain, "contested", "alice");
    assert!(harness.chain.commit(vec![theirs.clone()])[0].is_ok());
    harness.commit_and_announce(&[theirs.id()], &[id]);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the wait ends")
        .unwrap();
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(code(&body), "work_already_registered");
}

#[tokio::test]
async fn waiting_clients_are_bounded_and_answered_at_shutdown() {
    use ipledger_node::api::WAITERS_MAX;
    let mut harness = Harness::busy();
    let mut waiting = Vec::new();
    for n in 0..WAITERS_MAX {
        let tx = register_work(&mut harness.chain, &format!("queued-{n}"), "bob");
        let body = serde_json::to_vec(&tx).unwrap();
        waiting.push(tokio::spawn(call(
            harness.router(),
            Method::POST,
            "/v1/transactions?wait=true&timeout_ms=60000",
            Some(body),
        )));
    }
    while harness.mempool.lock().unwrap().len() < WAITERS_MAX {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One waiter too many is refused before admission; without waiting it is admitted.
    let tx = register_work(&mut harness.chain, "one-more", "bob");
    let (status, answer) = harness.submit(&tx, "?wait=true").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(code(&answer), "busy");
    assert!(!harness.pooled(&tx.id()));
    let (status, _) = harness.submit(&tx, "").await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // Shutting down answers every waiter at once.
    harness.state.begin_shutdown();
    for request in waiting {
        let (status, answer) = tokio::time::timeout(Duration::from_secs(10), request)
            .await
            .expect("answered at shutdown")
            .unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(code(&answer), "shutting_down");
    }
}

#[tokio::test]
async fn load_beyond_the_request_limit_is_shed_with_503_busy() {
    use ipledger_node::api::{router, ApiLimits, ApiState};
    let mut harness = Harness::busy();
    let limits = ApiLimits {
        concurrent_requests: 2,
        waiters: 2,
    };
    let state = ApiState::with_limits(
        harness.store.clone(),
        Arc::new(harness.chain.genesis.clone()),
        harness.mempool.clone(),
        harness.committed.clone(),
        Arc::new(|| NOW_MS),
        limits,
    );
    // Two waiting submissions hold both request slots.
    let mut waiting = Vec::new();
    for n in 0..2 {
        let tx = register_work(&mut harness.chain, &format!("held-{n}"), "bob");
        let body = serde_json::to_vec(&tx).unwrap();
        waiting.push(tokio::spawn(call(
            router(state.clone()),
            Method::POST,
            "/v1/transactions?wait=true&timeout_ms=60000",
            Some(body),
        )));
    }
    while harness.mempool.lock().unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, headers, bytes) =
        call_raw(router(state.clone()), Method::GET, "/v1/status", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&answer), "busy");
    state.begin_shutdown();
    for request in waiting {
        let (status, _) = request.await.unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let (status, _) = call(router(state), Method::GET, "/v1/status", None).await;
    assert_eq!(status, StatusCode::OK, "slots are released");
}

/// `POST /v1/transactions/batch` with `txs` as a JSON array, after `query`.
async fn submit_batch(harness: &Harness, txs: &[SignedTx], query: &str) -> (StatusCode, Value) {
    let body = serde_json::to_vec(txs).unwrap();
    harness
        .call(
            Method::POST,
            &format!("/v1/transactions/batch{query}"),
            Some(body),
        )
        .await
}

/// The batch answer's results as (http_status, answer) pairs.
fn batch_results(body: &Value) -> Vec<(u16, Value)> {
    body["results"]
        .as_array()
        .unwrap_or_else(|| panic!("not a batch answer: {body}"))
        .iter()
        .map(|item| {
            (
                item["http_status"].as_u64().expect("http_status") as u16,
                item["answer"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_good_batch_is_admitted_and_each_transaction_answered_as_the_single_route_would() {
    let mut harness = Harness::busy();
    let txs: Vec<SignedTx> = (0..20)
        .map(|n| register_work(&mut harness.chain, &format!("batch-{n}"), "bob"))
        .collect();
    let (status, body) = submit_batch(&harness, &txs, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = batch_results(&body);
    assert_eq!(results.len(), txs.len());
    for (tx, (status, answer)) in txs.iter().zip(&results) {
        assert_eq!(*status, 202, "{answer}");
        assert_eq!(
            *answer,
            serde_json::json!({"id": tx.id().to_string(), "status": "pending"})
        );
        assert!(harness.pooled(&tx.id()));
    }
    // In the mempool in the order sent.
    let pooled: Vec<TxId> = harness
        .mempool
        .lock()
        .unwrap()
        .iter()
        .map(VerifiedTx::id)
        .collect();
    assert_eq!(pooled, txs.iter().map(SignedTx::id).collect::<Vec<_>>());
    // Each transaction answers the single route as it was admitted.
    let (status, answer) = harness.submit(&txs[7], "").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    let (_, _, metrics) = call_raw(harness.router(), Method::GET, "/metrics", None).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("ipledger_transactions_admitted_total 20"),
        "{metrics}"
    );
}

#[tokio::test]
async fn one_bad_signature_or_malformed_element_refuses_only_that_transaction() {
    let mut harness = Harness::busy();
    let mut txs: Vec<SignedTx> = (0..10)
        .map(|n| register_work(&mut harness.chain, &format!("mixed-{n}"), "alice"))
        .collect();
    let Signature::Ed25519(bytes) = &mut txs[3].signatures[0].signature;
    bytes[10] ^= 0x40;
    // A rule refusal too: "film" is bob's already.
    txs[6] = register_work(&mut harness.chain, "film", "alice");
    let (status, body) = submit_batch(&harness, &txs, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = batch_results(&body);
    for (n, (tx, (status, answer))) in txs.iter().zip(&results).enumerate() {
        match n {
            3 => {
                assert_eq!(*status, 422, "{answer}");
                assert_eq!(code(answer), "bad_signature");
                assert!(!harness.pooled(&tx.id()));
            }
            6 => {
                assert_eq!(*status, 422, "{answer}");
                assert_eq!(code(answer), "work_already_registered");
                assert!(!harness.pooled(&tx.id()));
            }
            _ => {
                assert_eq!(*status, 202, "{n}: {answer}");
                assert!(harness.pooled(&tx.id()));
            }
        }
    }
    assert_eq!(harness.mempool.lock().unwrap().len(), 8);

    // An element that is not a transaction is refused on its own, as the single route would.
    let good = register_work(&mut harness.chain, "after-junk", "bob");
    let mut elements = vec![serde_json::to_value(&good).unwrap()];
    elements.push(serde_json::json!({"body": 1, "signatures": []}));
    elements.push(serde_json::json!("not a transaction"));
    let (status, body) = harness
        .call(
            Method::POST,
            "/v1/transactions/batch",
            Some(serde_json::to_vec(&elements).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = batch_results(&body);
    assert_eq!(results[0].0, 202, "{body}");
    for (status, answer) in &results[1..] {
        assert_eq!(*status, 400, "{answer}");
        assert_eq!(code(answer), "malformed_request");
    }
    assert!(harness.pooled(&good.id()));
}

#[tokio::test]
async fn duplicates_in_a_batch_and_of_pending_or_committed_transactions() {
    let mut harness = Harness::busy();
    let pending = register_work(&mut harness.chain, "already-pending", "bob");
    assert_eq!(harness.submit(&pending, "").await.0, StatusCode::ACCEPTED);
    let fresh = register_work(&mut harness.chain, "twice", "bob");
    let committed = harness.chain.blocks[0].txs[1].clone();
    // The same id with a bad signature first and the good one after: the good one is admitted.
    let mut forged = register_work(&mut harness.chain, "forged-first", "alice");
    let good = forged.clone();
    let Signature::Ed25519(bytes) = &mut forged.signatures[0].signature;
    bytes[0] ^= 1;
    let batch = vec![
        fresh.clone(),
        pending.clone(),
        fresh.clone(),
        committed.clone(),
        forged.clone(),
        forged,
        good.clone(),
    ];
    let (status, body) = submit_batch(&harness, &batch, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = batch_results(&body);
    let pending_answer =
        |tx: &SignedTx| serde_json::json!({"id": tx.id().to_string(), "status": "pending"});
    assert_eq!(results[0], (202, pending_answer(&fresh)));
    assert_eq!(results[1], (202, pending_answer(&pending)));
    assert_eq!(results[2], (202, pending_answer(&fresh)));
    assert_eq!(results[3].0, 422, "{body}");
    assert_eq!(code(&results[3].1), "already_committed");
    for forged in &results[4..6] {
        assert_eq!(forged.0, 422, "{body}");
        assert_eq!(code(&forged.1), "bad_signature");
    }
    assert_eq!(results[6], (202, pending_answer(&good)));
    assert_eq!(harness.mempool.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn oversize_empty_and_non_array_batches_are_refused_whole() {
    use ipledger_node::api::BATCH_TXS_MAX;
    let mut harness = Harness::busy();
    // One transaction too many: refused before any is admitted.
    let tx = register_work(&mut harness.chain, "many", "bob");
    let too_many = vec![tx.clone(); BATCH_TXS_MAX + 1];
    let (status, answer) = submit_batch(&harness, &too_many, "").await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "too_large");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains(&BATCH_TXS_MAX.to_string()));
    // Many tiny elements are counted the same way.
    let tiny = format!("[{}0]", "0,".repeat(BATCH_TXS_MAX));
    let (status, answer) = harness
        .call(
            Method::POST,
            "/v1/transactions/batch",
            Some(tiny.into_bytes()),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "too_large");
    assert!(harness.mempool.lock().unwrap().is_empty());
    // A body past the limit.
    let body = vec![b' '; BODY_BYTES_MAX + 1];
    let (status, answer) = harness
        .call(Method::POST, "/v1/transactions/batch", Some(body))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "too_large");
    // Exactly the limit is fine.
    let full: Vec<SignedTx> = (0..BATCH_TXS_MAX)
        .map(|n| register_work(&mut harness.chain, &format!("full-{n}"), "bob"))
        .collect();
    let (status, body) = submit_batch(&harness, &full, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(batch_results(&body)
        .iter()
        .all(|(status, _)| *status == 202));
    // Not an array, an empty array, a bad query.
    for body in [&b"{}"[..], b"[", b"[]", b"7"] {
        let (status, answer) = harness
            .call(Method::POST, "/v1/transactions/batch", Some(body.to_vec()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(code(&answer), "malformed_request");
    }
    let (status, answer) = submit_batch(&harness, &[tx], "?timeout_ms=1&wait=yes").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(code(&answer), "invalid_parameter");
    // Each whole-batch refusal of its body is counted by code, as the single route's are.
    let (status, _, metrics) = call_raw(harness.router(), Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let metrics = String::from_utf8(metrics).unwrap();
    for (code, count) in [("too_large", 3), ("malformed_request", 4)] {
        let line = format!("ipledger_admission_rejections_total{{code=\"{code}\"}} {count}");
        assert!(metrics.contains(&line), "{line} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn a_waiting_batch_answers_each_transaction_when_committed_dropped_or_timed_out() {
    let mut harness = Harness::busy();
    let first = register_work(&mut harness.chain, "wait-1", "bob");
    let second = register_work(&mut harness.chain, "wait-2", "bob");
    let contested = register_work(&mut harness.chain, "wait-contested", "bob");
    let refused = register_work(&mut harness.chain, "song", "bob");
    let batch = vec![first.clone(), second.clone(), contested.clone(), refused];
    let request = tokio::spawn(call(
        harness.router(),
        Method::POST,
        "/v1/transactions/batch?wait=true&timeout_ms=60000",
        Some(serde_json::to_vec(&batch).unwrap()),
    ));
    while !harness.pooled(&contested.id()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // One block holds the first; alice's copy of the contested work beats bob's.
    let theirs = register_work(&mut harness.chain, "wait-contested", "alice");
    assert!(harness
        .chain
        .commit(vec![first.clone(), theirs.clone()])
        .iter()
        .all(Result::is_ok));
    harness.commit_and_announce(&[first.id(), theirs.id()], &[first.id(), contested.id()]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!request.is_finished(), "the second is still pending");
    assert!(harness.chain.commit(vec![second.clone()])[0].is_ok());
    harness.commit_and_announce(&[second.id()], &[second.id()]);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the wait ends")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = batch_results(&body);
    assert_eq!(
        results[0],
        (
            200,
            serde_json::json!({"id": first.id().to_string(), "status": "committed",
                               "height": 4, "index_in_block": 0, "ledger_index": 8})
        )
    );
    assert_eq!(
        results[1],
        (
            200,
            serde_json::json!({"id": second.id().to_string(), "status": "committed",
                               "height": 5, "index_in_block": 0, "ledger_index": 10})
        )
    );
    assert_eq!(results[2].0, 422, "{body}");
    assert_eq!(code(&results[2].1), "work_already_registered");
    assert_eq!(results[3].0, 422, "{body}");
    assert_eq!(code(&results[3].1), "work_already_registered");

    // A batch whose wait times out answers its pending transactions 504 pending.
    let slow = register_work(&mut harness.chain, "wait-slow", "bob");
    let (status, body) = submit_batch(
        &harness,
        std::slice::from_ref(&slow),
        "?wait=true&timeout_ms=100",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        batch_results(&body),
        vec![(
            504,
            serde_json::json!({"id": slow.id().to_string(), "status": "pending"})
        )]
    );
    assert!(harness.pooled(&slow.id()));
}
