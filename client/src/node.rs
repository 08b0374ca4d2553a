//! Talking to one node's HTTP API. Nothing here is trusted: callers check every answer that
//! matters (receipts, state proofs) with [`crate::trust`] before using it.

use crate::error::{ClientError, Result};
use ledger_core::receipt::Receipt;
use ledger_core::tx::{SignedTx, TxId};
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long one HTTP request may take, including a submission that waits for its commit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a submission waits for its commit on the node (the API's maximum).
pub const COMMIT_WAIT_MS: u64 = 60_000;
/// How long to keep retrying while the node answers 503 (busy, mempool full).
pub const BUSY_RETRY_DEADLINE: Duration = Duration::from_secs(60);
/// The pause between retries while the node is busy.
pub const BUSY_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The largest answer read from a node, in bytes (a state answer with many validator changes
/// is the largest).
pub const ANSWER_BYTES_MAX: u64 = 32 * 1024 * 1024;

/// Where a committed transaction landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Committed {
    /// The committing block's height.
    pub height: u64,
    /// The transaction's index in the ledger-wide tree.
    pub ledger_index: u64,
}

/// A client of one node.
pub struct NodeClient {
    url: String,
    agent: ureq::Agent,
}

impl NodeClient {
    /// A client of the node at `url` (`http://host:port`).
    pub fn new(url: &str) -> NodeClient {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        NodeClient {
            url: url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// The node's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn unreachable(&self, problem: impl Into<String>) -> ClientError {
        ClientError::Unreachable {
            url: self.url.clone(),
            problem: problem.into(),
        }
    }

    fn read_answer(
        &self,
        what: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<(u16, Value)> {
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(ANSWER_BYTES_MAX)
            .read_to_string()
            .map_err(|error| self.unreachable(format!("reading the answer to {what}: {error}")))?;
        let json = serde_json::from_str(&text).map_err(|_| {
            self.unreachable(format!(
                "{what} answered {status} with something that is not JSON ({:.120}); is this an ipledger node?",
                text
            ))
        })?;
        Ok((status, json))
    }

    /// GET `path` (e.g. `/v1/status`): the status and the JSON body.
    pub fn get(&self, path: &str) -> Result<(u16, Value)> {
        let url = format!("{}{path}", self.url);
        let response = self.agent.get(&url).call().map_err(|error| {
            self.unreachable(format!(
                "GET {path} failed: {error}; check that the node runs and that --node (or IPLEDGER_NODE) names its HTTP address"
            ))
        })?;
        self.read_answer(&format!("GET {path}"), response)
    }

    /// GET `path`, requiring 200.
    pub fn get_ok(&self, path: &str) -> Result<Value> {
        let (status, answer) = self.get(path)?;
        if status != 200 {
            return Err(self.unreachable(format!(
                "GET {path} answered {status}: {}",
                error_text(&answer)
            )));
        }
        Ok(answer)
    }

    /// The node's `/v1/status` (unverified).
    pub fn status(&self) -> Result<Value> {
        self.get_ok("/v1/status")
    }

    /// The node's current height, as it claims (used only to choose `valid_until`).
    pub fn height(&self) -> Result<u64> {
        self.status()?["height"]
            .as_u64()
            .ok_or_else(|| self.unreachable("/v1/status has no height"))
    }

    /// Submits `tx` and waits for its commit. A refusal by a rule is
    /// [`ClientError::Rejected`]; a node that stays busy or does not commit in time is
    /// [`ClientError::Unreachable`].
    pub fn submit(&self, tx: &SignedTx) -> Result<Committed> {
        let path = format!("/v1/transactions?wait=true&timeout_ms={COMMIT_WAIT_MS}");
        let url = format!("{}{path}", self.url);
        let body = serde_json::to_string(tx).expect("a transaction always serialises");
        let deadline = Instant::now() + BUSY_RETRY_DEADLINE;
        loop {
            let response = self
                .agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.as_str())
                .map_err(|error| {
                    self.unreachable(format!(
                        "submitting failed: {error}; check that the node runs and that --node names its HTTP address"
                    ))
                })?;
            let (status, answer) = self.read_answer("POST /v1/transactions", response)?;
            match status {
                200 if answer["status"] == "committed" => {
                    let field = |name: &str| {
                        answer[name]
                            .as_u64()
                            .ok_or_else(|| self.unreachable(format!("a commit answer without {name}")))
                    };
                    return Ok(Committed {
                        height: field("height")?,
                        ledger_index: field("ledger_index")?,
                    });
                }
                503 if Instant::now() < deadline => std::thread::sleep(BUSY_RETRY_PAUSE),
                422 | 409 => {
                    let code = answer["error"]["code"].as_str().unwrap_or("unknown");
                    let message = answer["error"]["message"].as_str().unwrap_or_default();
                    // The node's message repeats the code; say it once.
                    let prefix = format!("rejected ({code}): ");
                    return Err(ClientError::Rejected {
                        code: code.to_owned(),
                        message: message.strip_prefix(&prefix).unwrap_or(message).to_owned(),
                    });
                }
                400 | 413 => {
                    return Err(ClientError::usage(format!(
                        "the node refused the transaction as malformed: {}",
                        error_text(&answer)
                    )))
                }
                504 => {
                    return Err(self.unreachable(format!(
                        "transaction {} was accepted but not committed within {} s; the network may be stalled. Check later with `ipledger status`",
                        tx.id(),
                        COMMIT_WAIT_MS / 1000
                    )))
                }
                _ => {
                    return Err(self.unreachable(format!(
                        "submitting answered {status}: {}",
                        error_text(&answer)
                    )))
                }
            }
        }
    }

    /// The receipt of a committed transaction, as the node serves it (unverified).
    pub fn receipt(&self, id: &TxId) -> Result<Receipt> {
        let answer = self.get_ok(&format!("/v1/transactions/{id}/receipt"))?;
        serde_json::from_value(answer).map_err(|error| {
            self.unreachable(format!("the receipt of {id} does not parse: {error}"))
        })
    }
}

/// The `{"error": {"code", "message"}}` of an answer, as one line.
fn error_text(answer: &Value) -> String {
    match (
        answer["error"]["code"].as_str(),
        answer["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("{:.200}", answer.to_string()),
    }
}
