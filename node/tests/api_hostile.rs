//! Hostile clients against the API served over loopback TCP (issue 5): idle, slow and
//! non-reading connections are cut off within their time limits while other clients are served;
//! oversize bodies and heads are refused; connections over the limit are answered 503 and the
//! node serves afterwards; unsigned, wrongly signed and replayed transactions are refused with
//! their rule codes over the wire; and a node does not start with a key file others can read.
//!
//! The servers run with shortened [`ConnectionLimits`]; the tests poll with generous deadlines
//! and assert no timings except that a connection is closed no sooner than its time limit and
//! not much later.

mod api_common;
mod store_common;
use api_common::*;
use ipledger_node::api::{serve_on, ApiState, ConnectionLimits, BODY_BYTES_MAX, HEAD_BYTES_MAX};
use ledger_core::crypto::Signature;
use ledger_core::testkit::test_key;
use ledger_core::tx::SignedTx;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{timeout, Instant};

/// Added to a time limit before a test calls a connection stuck: a loaded two-core CI machine
/// may run the server's timers late.
const SLACK: Duration = Duration::from_secs(20);
/// How long a test waits for anything it polls or for an answer.
const DEADLINE: Duration = Duration::from_secs(60);
/// The pause between two polls.
const POLL_PAUSE: Duration = Duration::from_millis(20);
/// The pace of a client trickling a head or a body.
const TRICKLE_PAUSE: Duration = Duration::from_millis(100);

/// An API served over loopback on a port from the OS, with `limits`.
struct Served {
    address: SocketAddr,
    stop: oneshot::Sender<()>,
    server: JoinHandle<anyhow::Result<()>>,
}

impl Served {
    async fn start(harness: &Harness, limits: ConnectionLimits) -> Served {
        let state = ApiState::new(
            harness.store.clone(),
            Arc::new(harness.chain.genesis.clone()),
            harness.mempool.clone(),
            harness.committed.clone(),
            Arc::new(|| NOW_MS),
        )
        .with_connection_limits(limits);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve_on(listener, state, async move {
            let _ = stopped.await;
        }));
        Served {
            address,
            stop,
            server,
        }
    }

    /// Shuts the server down gracefully and checks it ends cleanly.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        timeout(DEADLINE, self.server)
            .await
            .expect("the server stops")
            .unwrap()
            .expect("the server ends cleanly");
    }
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn parse(bytes: &[u8]) -> Answer {
        let text = String::from_utf8_lossy(bytes);
        let (head, _) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response head in {text:?}"));
        let status = head[9..12].parse().unwrap();
        let body = bytes[head.len() + 4..].to_vec();
        Answer {
            status,
            head: head.to_ascii_lowercase(),
            body,
        }
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The value of header `name` (lower case), if present.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim())
        })
    }

    fn content_length(&self) -> usize {
        self.header("content-length")
            .map_or(0, |n| n.parse().unwrap())
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n").into_bytes()
}

fn get_keep_alive(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: node\r\n\r\n").into_bytes()
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` on a new connection and reads the answer until the server closes it. A
/// reset after the answer (the server closing with bytes unread) is not an error here.
async fn exchange(address: SocketAddr, request: &[u8]) -> Answer {
    timeout(DEADLINE, async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        read_until_closed(&mut stream).await
    })
    .await
    .expect("the server answers")
}

async fn read_until_closed(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let outcome = stream.read_to_end(&mut bytes).await;
    assert!(
        outcome.is_ok() || !bytes.is_empty(),
        "nothing read: {outcome:?}"
    );
    Answer::parse(&bytes)
}

/// Reads one response from a kept-alive connection.
async fn read_response(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let length = Answer::parse(&bytes[..end + 4]).content_length();
            if bytes.len() >= end + 4 + length {
                return Answer::parse(&bytes[..end + 4 + length]);
            }
        }
        let n = timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("the server answers")
            .unwrap();
        assert!(n > 0, "the server closed the connection mid-response");
        bytes.extend_from_slice(&chunk[..n]);
    }
}

/// The value of the metric line starting with `name ` (e.g. `ipledger_http_connections`).
async fn metric(address: SocketAddr, name: &str) -> i64 {
    let answer = exchange(address, &get("/metrics")).await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        .parse()
        .unwrap()
}

/// Polls until `metric` is `value`; returns when it was first seen.
async fn wait_for_metric(address: SocketAddr, name: &str, value: i64) -> Instant {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let seen = metric(address, name).await;
        if seen == value {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{name} stayed {seen}, not {value}"
        );
        tokio::time::sleep(POLL_PAUSE).await;
    }
}

/// Connects, sends `prefix`, then one more byte of `filler` every [`TRICKLE_PAUSE`] while
/// reading whatever comes back, until the server closes the connection. Returns how long the
/// connection lived (from before connecting) and what the server sent.
async fn trickle(address: SocketAddr, prefix: Vec<u8>, filler: u8) -> (Duration, Vec<u8>) {
    let start = Instant::now();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(&prefix).await.unwrap();
    let mut ticks = tokio::time::interval(TRICKLE_PAUSE);
    let mut received = Vec::new();
    let mut chunk = [0u8; 1024];
    let mut writing = true;
    loop {
        tokio::select! {
            _ = ticks.tick(), if writing => {
                // Once the server has closed, writes fail; keep reading what it sent.
                writing = stream.write_all(&[filler]).await.is_ok();
            }
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return (start.elapsed(), received),
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// The process's soft limit on open files (both ends of every test connection count).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line["Max open files".len()..]
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_connections_are_cut_off_while_other_clients_are_served() {
    // Thousands where the open-files limit allows (each connection is two descriptors here).
    let idle_count = (open_files_limit().saturating_sub(1024) / 2).clamp(200, 2000);
    let mut harness = Harness::busy();
    let limits = ConnectionLimits {
        connections: idle_count + 64,
        header_read_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(5),
        ..ConnectionLimits::default()
    };
    let served = Served::start(&harness, limits).await;
    let address = served.address;

    // Connections that never send a byte, one client trickling a head, one trickling a body.
    let mut idle = Vec::new();
    for _ in 0..idle_count {
        let start = Instant::now();
        idle.push((start, TcpStream::connect(address).await.unwrap()));
    }
    let head = b"GET /v1/status HTTP/1.1\r\nHost: node\r\nX-Slow: ".to_vec();
    let slow_head = tokio::spawn(trickle(address, head, b'a'));
    let body =
        b"POST /v1/transactions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
                 Content-Length: 100000\r\n\r\n"
            .to_vec();
    let slow_body = tokio::spawn(trickle(address, body, b' '));

    // Meanwhile other clients read and submit as usual.
    let answer = exchange(address, &get("/v1/status")).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.json()["height"], 3);
    let tx = register_work(&mut harness.chain, "served-meanwhile", "bob");
    let answer = exchange(
        address,
        &post("/v1/transactions", &serde_json::to_vec(&tx).unwrap()),
    )
    .await;
    assert_eq!(answer.status, 202, "{answer:?}");
    assert!(harness.pooled(&tx.id()));
    let open = metric(address, "ipledger_http_connections").await;
    assert!(open > idle_count as i64, "{open} connections open");

    // The server closes every idle connection once the header timeout has passed, not before.
    let mut closes = JoinSet::new();
    for (start, mut stream) in idle {
        closes.spawn(async move {
            let mut byte = [0u8; 1];
            let read = timeout(limits.header_read_timeout + SLACK, stream.read(&mut byte)).await;
            (start.elapsed(), read)
        });
    }
    while let Some(closed) = closes.join_next().await {
        let (lived, read) = closed.unwrap();
        let read = read.expect("an idle connection is closed by the server");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(
            lived >= limits.header_read_timeout,
            "closed after {lived:?}"
        );
    }
    // So is the client trickling its head, without an answer.
    let (lived, received) = timeout(limits.header_read_timeout + SLACK, slow_head)
        .await
        .expect("the slow head is cut off")
        .unwrap();
    assert!(
        lived >= limits.header_read_timeout,
        "closed after {lived:?}"
    );
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
    // The client trickling its body is answered 408 body_timeout and closed.
    let (lived, received) = timeout(limits.body_read_timeout + SLACK, slow_body)
        .await
        .expect("the slow body is cut off")
        .unwrap();
    assert!(lived >= limits.body_read_timeout, "closed after {lived:?}");
    let answer = Answer::parse(&received);
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(code(&answer.json()), "body_timeout");

    // None of them holds a connection any more (the one open is the metrics request's own),
    // and the node still serves.
    wait_for_metric(address, "ipledger_http_connections", 1).await;
    assert_eq!(exchange(address, &get("/v1/status")).await.status, 200);
    served.stop().await;
}

#[tokio::test]
async fn oversize_bodies_and_heads_are_refused_over_tcp() {
    let harness = Harness::busy();
    let served = Served::start(&harness, ConnectionLimits::default()).await;
    let address = served.address;

    // A body declared too large is refused before any of it is sent.
    let head = format!(
        "POST /v1/transactions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        BODY_BYTES_MAX + 1
    );
    let answer = exchange(address, head.as_bytes()).await;
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(code(&answer.json()), "too_large");
    assert_eq!(answer.header("connection"), Some("close"));

    // A chunked body is refused as soon as it grows past the limit.
    let mut request = b"POST /v1/transactions HTTP/1.1\r\nHost: node\r\n\
                        Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        .to_vec();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..=BODY_BYTES_MAX / chunk.len() {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    let answer = timeout(DEADLINE, async {
        let stream = TcpStream::connect(address).await.unwrap();
        let (mut reader, mut writer) = stream.into_split();
        // The server stops reading at the limit, so write while reading the answer.
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            writer
        });
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes).await;
        drop(writing.await.unwrap());
        Answer::parse(&bytes)
    })
    .await
    .expect("the server answers");
    assert_eq!(answer.status, 413, "{answer:?}");
    assert_eq!(code(&answer.json()), "too_large");

    // A head past HEAD_BYTES_MAX is answered 431.
    let head = format!(
        "GET /v1/status HTTP/1.1\r\nHost: node\r\nX-Big: {}\r\n\r\n",
        "a".repeat(HEAD_BYTES_MAX)
    );
    let answer = exchange(address, head.as_bytes()).await;
    assert_eq!(answer.status, 431, "{answer:?}");

    // Both refused submissions are counted, and the node still serves.
    let refused = "ipledger_admission_rejections_total{code=\"too_large\"}";
    assert_eq!(metric(address, refused).await, 2);
    assert_eq!(exchange(address, &get("/v1/status")).await.status, 200);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_refused_and_the_node_serves_afterwards() {
    const LIMIT: usize = 8;
    let harness = Harness::busy();
    let limits = ConnectionLimits {
        connections: LIMIT,
        // Long, so the held connections stay open for the whole test.
        header_read_timeout: Duration::from_secs(600),
        ..ConnectionLimits::default()
    };
    let served = Served::start(&harness, limits).await;
    let address = served.address;

    // LIMIT kept-alive connections, each served once.
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(&get_keep_alive("/v1/status"))
            .await
            .unwrap();
        assert_eq!(read_response(&mut stream).await.status, 200);
        held.push(stream);
    }

    // One more is answered 503 too_many_connections at once and closed, whether it sends a
    // request or nothing.
    for request in [&b""[..], &get("/v1/status")] {
        let answer = exchange(address, request).await;
        assert_eq!(answer.status, 503, "{answer:?}");
        assert_eq!(code(&answer.json()), "too_many_connections");
        assert_eq!(answer.header("retry-after"), Some("1"));
        assert_eq!(answer.header("connection"), Some("close"));
    }

    // The held connections are still served, and the metrics tell the operator.
    let stream = &mut held[0];
    stream.write_all(&get_keep_alive("/metrics")).await.unwrap();
    let answer = read_response(stream).await;
    assert_eq!(answer.status, 200);
    let text = String::from_utf8(answer.body).unwrap();
    for line in [
        format!("ipledger_http_connections {LIMIT}"),
        "ipledger_http_connections_refused_total 2".to_owned(),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }

    // A connection closed by its client frees its place for a new client.
    drop(held.pop());
    let deadline = Instant::now() + DEADLINE;
    loop {
        let answer = exchange(address, &get("/v1/status")).await;
        if answer.status == 200 {
            break;
        }
        assert_eq!(code(&answer.json()), "too_many_connections");
        assert!(Instant::now() < deadline, "no place freed");
        tokio::time::sleep(POLL_PAUSE).await;
    }
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_answers_is_disconnected() {
    let harness = Harness::busy();
    let limits = ConnectionLimits {
        send_stall_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    };
    let served = Served::start(&harness, limits).await;
    let address = served.address;

    // Hundreds of pipelined requests for the OpenAPI document (tens of MB of answers) on a
    // connection with a small receive buffer, never read.
    let start = Instant::now();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(address).await.unwrap();
    let requests = get_keep_alive("/openapi.json").repeat(800);
    stalled.write_all(&requests).await.unwrap();

    // The server closes it once its answer has made no progress for the stall timeout.
    let closed = wait_for_metric(address, "ipledger_http_connections", 1).await;
    let lived = closed - start;
    assert!(lived >= limits.send_stall_timeout, "closed after {lived:?}");
    assert!(
        lived <= limits.send_stall_timeout + SLACK,
        "closed after {lived:?}"
    );
    let mut rest = Vec::new();
    let ended = timeout(DEADLINE, stalled.read_to_end(&mut rest)).await;
    assert!(ended.is_ok(), "the stalled connection ends");
    assert_eq!(exchange(address, &get("/v1/status")).await.status, 200);
    served.stop().await;
}

/// Submits `tx` over TCP and returns the answer.
async fn submit(address: SocketAddr, tx: &SignedTx) -> Answer {
    let body = serde_json::to_vec(tx).unwrap();
    exchange(address, &post("/v1/transactions", &body)).await
}

#[tokio::test]
async fn unsigned_wrongly_signed_and_replayed_transactions_are_refused_over_tcp() {
    let mut harness = Harness::busy();
    let served = Served::start(&harness, ConnectionLimits::default()).await;
    let address = served.address;
    let refusals: [(&str, SignedTx); 6] = [
        ("missing_signature", {
            let mut tx = register_work(&mut harness.chain, "unsigned", "bob");
            tx.signatures.clear();
            tx
        }),
        ("missing_signature", {
            let tx = register_work(&mut harness.chain, "stranger", "bob");
            let mut resigned = SignedTx::unsigned(tx.body);
            resigned.sign(&test_key("mallory"));
            resigned
        }),
        ("unknown_signer", {
            let mut tx = register_work(&mut harness.chain, "stranger-too", "bob");
            tx.sign(&test_key("mallory"));
            tx
        }),
        ("missing_signature", {
            let tx = register_work(&mut harness.chain, "other-party", "bob");
            let mut resigned = SignedTx::unsigned(tx.body);
            resigned.sign(&test_key("alice"));
            resigned
        }),
        ("bad_signature", {
            let mut tx = register_work(&mut harness.chain, "forged", "bob");
            let Signature::Ed25519(bytes) = &mut tx.signatures[0].signature;
            bytes[7] ^= 0x01;
            tx
        }),
        ("already_committed", harness.chain.blocks[1].txs[0].clone()),
    ];
    for (expected, tx) in refusals {
        let answer = submit(address, &tx).await;
        assert_eq!(answer.status, 422, "{expected}: {answer:?}");
        assert_eq!(code(&answer.json()), expected);
    }
    assert!(harness.mempool.lock().unwrap().is_empty());
    // Replaying a pending transaction answers as the first submission did and pools it once.
    let tx = register_work(&mut harness.chain, "replayed", "bob");
    for _ in 0..3 {
        let answer = submit(address, &tx).await;
        assert_eq!(answer.status, 202, "{answer:?}");
        assert_eq!(answer.json()["status"], "pending");
    }
    assert_eq!(harness.mempool.lock().unwrap().len(), 1);
    served.stop().await;
}

#[tokio::test]
async fn a_node_refuses_to_start_with_a_key_file_others_can_read() {
    use ipledger_genesis::{create_local, LocalOptions, NodeConfig};
    use ipledger_node::service::{setup_from_config, start_from_config};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        validators: 1,
        ..LocalOptions::new(dir.path().join("net"))
    };
    let network = create_local(&options).expect("a local network is created");
    let config = NodeConfig::load(&network.nodes[0].config_path).unwrap();
    let key = config.node_key_path();
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode(&key) & 0o777, 0o600, "key files are created 0600");
    for readable in [0o644, 0o640, 0o604, 0o660, 0o606] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(readable)).unwrap();
        let Err(error) = start_from_config(&config).await else {
            panic!("the node started with its key file at mode {readable:o}");
        };
        let message = format!("{error:#}");
        assert!(
            message.contains("chmod 600") && message.contains(&format!("{readable:04o}")),
            "{message}"
        );
        assert!(!config.data_dir().join("ledger.redb").exists());
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    setup_from_config(&config).expect("with mode 0600 the key is accepted");
}
