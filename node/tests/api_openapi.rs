//! The OpenAPI document lists exactly the routes the router serves; metrics, unknown routes and
//! methods; and serving over loopback TCP with a graceful shutdown.

mod api_common;
mod store_common;
use api_common::*;
use axum::http::{header, Method, StatusCode};
use ipledger_node::api::{routes, serve_on, OPENAPI_JSON};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn document() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("the OpenAPI document is JSON")
}

#[test]
fn the_openapi_document_lists_exactly_the_routes_served() {
    let doc = document();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    assert_eq!(documented, served);
}

#[test]
fn the_openapi_document_is_consistent() {
    let doc = document();
    // Every reference resolves.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target.clone());
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let pointer = target.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
    }
    // Every path parameter is declared, and every operation has an id and responses.
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let names: BTreeSet<&str> = path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for operation in item.as_object().unwrap().values() {
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .filter(|p| p["in"] == "path")
                        .map(|p| p["name"].as_str().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            assert_eq!(declared, names, "{path}");
            assert!(ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
            assert!(!operation["responses"].as_object().unwrap().is_empty());
        }
    }
}

#[tokio::test]
async fn every_route_is_routed_and_serves_the_document() {
    let harness = Harness::busy();
    for (method, path) in routes() {
        let uri = path
            .replace(
                "{id}",
                &format!("{}", ledger_core::crypto::Digest::sha256(b"x")),
            )
            .replace("{height}", "1")
            .replace("{key}", "00")
            .replace("{content_hash}", "sha256:00")
            .replace("{asset}", "work:x")
            .replace("{hash}", "x");
        let body = (method == Method::POST).then(|| b"{}".to_vec());
        let (status, answer) = harness.call(method.clone(), &uri, body).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(
            !message.starts_with("no route"),
            "{method} {uri} is not routed"
        );
    }
    let (status, headers, bytes) =
        call_raw(harness.router(), Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(bytes, OPENAPI_JSON.as_bytes());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let harness = Harness::busy();
    let (status, answer) = harness.get("/v2/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(code(&answer), "not_found");
    let (status, answer) = harness.call(Method::DELETE, "/v1/status", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(code(&answer), "method_not_allowed");
}

#[tokio::test]
async fn metrics_report_the_chain_and_the_mempool() {
    let mut harness = Harness::busy();
    let tx = register_work(&mut harness.chain, "metered", "bob");
    assert_eq!(harness.submit(&tx, "").await.0, StatusCode::ACCEPTED);
    let (status, headers, bytes) = call_raw(harness.router(), Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = String::from_utf8(bytes).unwrap();
    for line in [
        "ipledger_height 3",
        "ipledger_transactions_committed_total 8",
        "ipledger_mempool_transactions 1",
        "ipledger_state_pruned_through_version 0",
        "ipledger_transactions_admitted_total 1",
        "# TYPE ipledger_admission_rejections counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line:?} missing from\n{text}"
        );
    }
    assert!(text.ends_with("# EOF\n"));
}

/// One HTTP/1.1 exchange over loopback TCP, without a client library.
async fn http(address: std::net::SocketAddr, request: String) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn serves_over_loopback_and_shuts_down_gracefully_answering_waiters() {
    let mut harness = Harness::busy();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_on(listener, harness.state.clone(), async move {
        let _ = stopped.await;
    }));

    let (status, answer) = http(
        address,
        "GET /v1/status HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["height"], 3);

    let tx = register_work(&mut harness.chain, "waiting", "bob");
    let body = serde_json::to_string(&tx).unwrap();
    let request = format!(
        "POST /v1/transactions?wait=true HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let waiting = tokio::spawn(http(address, request));
    while !harness.pooled(&tx.id()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.send(()).unwrap();
    let (status, answer) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting client is answered at shutdown")
        .unwrap();
    assert_eq!(status, 503, "{answer}");
    assert_eq!(code(&answer), "shutting_down");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .unwrap()
        .expect("the server ends cleanly");
}
