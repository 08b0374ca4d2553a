//! Cross-crate tests, and a client of a running local network (`scripts/local-net.sh`): the
//! users' flows as signed transactions over HTTP (run by `tests/demo_flows.rs`), a load generator
//! (`ipledger-load`) and the fault harness ([`faults`], run by `ipledger-faults`).
//!
//! [`Net`] reads a network directory made by `scripts/local-net.sh start DIR` (or
//! `ipledger-genesis local --dir DIR`): the genesis, the organisations' keys and each node's HTTP
//! address. [`flows::run`] is the users' flows of `ledger-core/examples/users_flows.rs`, each
//! step submitted to a different node.

pub mod faults;
pub mod flows;

use anyhow::{anyhow, bail, ensure, Context, Result};
use ipledger_genesis::{read_genesis, KeyFile, NodeConfig};
use ledger_core::crypto::{Digest, SigningKey};
use ledger_core::genesis::Genesis;
use ledger_core::receipt::{verify_certified_header, CertifiedHeader, ValidatorChange};
use ledger_core::state_tree::StateProof;
use ledger_core::tx::{Action, SignedTx, TxBody};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// The organisations `ipledger-genesis local` creates, whose keys are in `DIR/keys/<org>.key`.
pub const ORGANISATIONS: [&str; 6] = [
    "trading-center",
    "bank-a",
    "bank-b",
    "court",
    "appraiser",
    "regulator",
];

/// How long a node may take to catch up to a height another node has committed.
pub const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// How many heights past the current one a transaction stays valid (at most the genesis'
/// `tx_lifetime_max`).
pub const TX_LIFETIME: u64 = 100;

/// One node of the network.
#[derive(Clone, Debug)]
pub struct Node {
    /// Its directory name without `node-` (e.g. `bank-b`).
    pub name: String,
    /// `http://host:port`.
    pub url: String,
}

/// What a submission came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this height.
    Committed { height: u64, ledger_index: u64 },
    /// Refused (422) with this rule code and message.
    Refused { code: String, message: String },
}

/// A client of a local network.
pub struct Net {
    /// The genesis every answer is checked against.
    pub genesis: Genesis,
    /// The nodes, in directory order.
    pub nodes: Vec<Node>,
    keys: BTreeMap<String, SigningKey>,
    agent: ureq::Agent,
    next: usize,
    /// The highest height any submission was committed at, so the next node is asked only
    /// once it has that block too.
    pub committed_height: u64,
}

/// A command's exit: 0, or 1 with the error and each of its causes on a line of stderr. Without a
/// backtrace even where `RUST_BACKTRACE` is set (as returning the error from `main` would print):
/// whoever runs a load or a fault run needs the reason, not our stack.
pub fn exit_with(result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// A fresh key from the operating system's randomness.
pub fn random_key() -> SigningKey {
    let mut seed = [0u8; 32];
    OsRng.fill_bytes(&mut seed);
    SigningKey::from_seed(seed)
}

/// A blocking HTTP agent that returns every status as an answer rather than an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

/// GET `url`, returning the status and the JSON body.
pub fn get_json(agent: &ureq::Agent, url: &str) -> Result<(u16, Value)> {
    let mut response = agent
        .get(url)
        .call()
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer to GET {url}"))?;
    let json = serde_json::from_str(&text)
        .with_context(|| format!("GET {url} answered {status} with non-JSON: {text:.200}"))?;
    Ok((status, json))
}

/// POST a signed transaction to `node_url`, waiting for its commit; retries while the node
/// answers 503 (busy, mempool full). Returns the status and JSON body.
pub fn post_tx(agent: &ureq::Agent, node_url: &str, tx: &SignedTx) -> Result<(u16, Value)> {
    let url = format!("{node_url}/v1/transactions?wait=true&timeout_ms=60000");
    let body = serde_json::to_string(tx)?;
    let (status, json, _) = post(agent, &url, &body, Resend::OnlyWhenBusy)?;
    Ok((status, json))
}

/// How long [`post_resending`] keeps sending a request that the node answers 503 (busy) or
/// whose connection fails before an answer.
pub const RESEND_DEADLINE: Duration = Duration::from_secs(120);

/// The answers to one request: each transaction's HTTP status and JSON answer, in order.
pub type Answers = Vec<(u16, Value)>;

/// POSTs `body` (JSON) to `url`, sending it again while the node answers 503 or the connection
/// fails before an answer (most often a kept-alive connection the node closed while idle), for
/// at most [`RESEND_DEADLINE`]. A resubmission is harmless: a pending transaction is answered as
/// pending, and one the earlier send got committed is refused as `already_committed`, which the
/// caller must resolve. Returns the status, the JSON body, and whether it was sent more than once.
pub fn post_resending(agent: &ureq::Agent, url: &str, body: &str) -> Result<(u16, Value, bool)> {
    post(agent, url, body, Resend::AlsoWhenDropped)
}

/// When [`post`] sends a request again (always within [`RESEND_DEADLINE`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// Only when the node answers 503: a failed connection is an error, which tests of the
    /// node's own behaviour want to see.
    OnlyWhenBusy,
    /// Also when the connection fails before an answer.
    AlsoWhenDropped,
}

fn post(agent: &ureq::Agent, url: &str, body: &str, resend: Resend) -> Result<(u16, Value, bool)> {
    let deadline = Instant::now() + RESEND_DEADLINE;
    let mut resent = false;
    loop {
        let sent = agent
            .post(url)
            .header("content-type", "application/json")
            .send(body);
        let mut response = match sent {
            Ok(response) => response,
            Err(error) if resend == Resend::AlsoWhenDropped && Instant::now() < deadline => {
                eprintln!("POST {url}: {error}; sending again");
                std::thread::sleep(Duration::from_millis(200));
                resent = true;
                continue;
            }
            Err(error) => return Err(error).with_context(|| format!("POST {url}")),
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        if status == 503 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            resent = true;
            continue;
        }
        let json = serde_json::from_str(&text)
            .with_context(|| format!("POST {url} answered {status} with non-JSON: {text:.200}"))?;
        return Ok((status, json, resent));
    }
}

/// Sends `txs` in one request to `node_url`'s batch route and waits for every commit, through
/// [`post_resending`]. Returns each transaction's answer, as the single route would give it, in
/// the order sent, and whether the request was sent more than once.
pub fn post_batch(
    agent: &ureq::Agent,
    node_url: &str,
    txs: &[impl AsRef<str>],
) -> Result<(Answers, bool)> {
    let url = format!("{node_url}/v1/transactions/batch?wait=true&timeout_ms=60000");
    let body = format!(
        "[{}]",
        txs.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",")
    );
    let (status, json, resent) = post_resending(agent, &url, &body)?;
    ensure!(status == 200, "POST {url} answered {status}: {json:.300}");
    let results = json["results"]
        .as_array()
        .with_context(|| format!("a batch answer without results: {json:.200}"))?;
    ensure!(
        results.len() == txs.len(),
        "{} results for {} transactions",
        results.len(),
        txs.len()
    );
    let answers = results
        .iter()
        .map(|item| {
            let status = item["http_status"]
                .as_u64()
                .with_context(|| format!("a batch result without http_status: {item}"))?;
            Ok((status as u16, item["answer"].clone()))
        })
        .collect::<Result<Answers>>()?;
    Ok((answers, resent))
}

/// Turns a submission's answer into an [`Outcome`], or an error for anything else.
pub fn outcome(status: u16, answer: &Value) -> Result<Outcome> {
    match status {
        200 if answer["status"] == "committed" => Ok(Outcome::Committed {
            height: answer["height"]
                .as_u64()
                .context("committed without a height")?,
            ledger_index: answer["ledger_index"]
                .as_u64()
                .context("committed without a ledger index")?,
        }),
        422 => Ok(Outcome::Refused {
            code: answer["error"]["code"]
                .as_str()
                .context("a 422 without an error code")?
                .to_owned(),
            message: answer["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }),
        _ => bail!("unexpected answer {status}: {answer}"),
    }
}

impl Net {
    /// Reads `dir`: `genesis.json`, `keys/<org>.key` for every organisation, and
    /// `node-*/config.toml`.
    pub fn open(dir: impl AsRef<Path>) -> Result<Net> {
        let dir = dir.as_ref();
        let genesis = read_genesis(dir.join("genesis.json"))
            .with_context(|| format!("reading {}/genesis.json", dir.display()))?;
        let mut keys = BTreeMap::new();
        for org in ORGANISATIONS {
            let path = dir.join("keys").join(format!("{org}.key"));
            let key = KeyFile::read(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .into_signing_key();
            keys.insert(org.to_owned(), key);
        }
        let mut nodes = Vec::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            let Some(name) = file_name.strip_prefix("node-") else {
                continue;
            };
            let config_path = entry.path().join("config.toml");
            let config = NodeConfig::load(&config_path)
                .with_context(|| format!("reading {}", config_path.display()))?;
            nodes.push(Node {
                name: name.to_owned(),
                url: format!("http://{}", config.http.listen),
            });
        }
        ensure!(
            !nodes.is_empty(),
            "no node-* directories in {}",
            dir.display()
        );
        Ok(Net {
            genesis,
            nodes,
            keys,
            agent: agent(),
            next: 0,
            committed_height: 0,
        })
    }

    /// The HTTP agent.
    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// An organisation's signing key.
    pub fn key(&self, org: &str) -> Result<&SigningKey> {
        self.keys
            .get(org)
            .ok_or_else(|| anyhow!("no key for organisation {org}"))
    }

    /// Adds a key under a party name (e.g. an enrolled rights holder's).
    pub fn add_key(&mut self, party: &str, key: SigningKey) {
        self.keys.insert(party.to_owned(), key);
    }

    /// The party whose key (organisation or added party) is `key`, if known.
    pub fn party_of(&self, key: &ledger_core::crypto::PublicKey) -> Option<&str> {
        self.keys
            .iter()
            .find(|(_, signing)| signing.public_key() == *key)
            .map(|(party, _)| party.as_str())
    }

    /// A node's `/v1/status`.
    pub fn status(&self, node: &Node) -> Result<Value> {
        let (status, answer) = get_json(&self.agent, &format!("{}/v1/status", node.url))?;
        ensure!(
            status == 200,
            "{} /v1/status answered {status}: {answer}",
            node.name
        );
        Ok(answer)
    }

    /// Waits until `node` has committed `height`; returns its height.
    pub fn wait_for_height(&self, node: &Node, height: u64) -> Result<u64> {
        let deadline = Instant::now() + CATCH_UP_DEADLINE;
        loop {
            let now = self.status(node)?["height"]
                .as_u64()
                .context("status without a height")?;
            if now >= height {
                return Ok(now);
            }
            ensure!(
                Instant::now() < deadline,
                "node {} stayed at height {now} below {height} for {CATCH_UP_DEADLINE:?}",
                node.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The next node in rotation, once it has every block committed so far; and its height.
    pub fn next_node(&mut self) -> Result<(Node, u64)> {
        let node = self.nodes[self.next % self.nodes.len()].clone();
        self.next += 1;
        let height = self.wait_for_height(&node, self.committed_height)?;
        Ok((node, height))
    }

    /// `action` as a transaction valid for [`TX_LIFETIME`] heights past `height`, with a random
    /// salt, signed by `signers` (organisations or added parties).
    pub fn tx(&self, action: Action, signers: &[&str], height: u64) -> Result<SignedTx> {
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let lifetime = TX_LIFETIME.min(self.genesis.params.tx_lifetime_max);
        let mut tx = SignedTx::unsigned(TxBody {
            chain_id: self.genesis.chain_id.clone(),
            salt,
            valid_until: height + lifetime,
            action,
        });
        for signer in signers {
            tx.sign(self.key(signer)?);
        }
        Ok(tx)
    }

    /// Signs `action` and submits it to the next node, waiting for its commit.
    pub fn submit(
        &mut self,
        action: Action,
        signers: &[&str],
    ) -> Result<(SignedTx, Node, Outcome)> {
        let (node, height) = self.next_node()?;
        let tx = self.tx(action, signers, height)?;
        let (status, answer) = post_tx(&self.agent, &node.url, &tx)?;
        let outcome =
            outcome(status, &answer).with_context(|| format!("submitting to {}", node.name))?;
        if let Outcome::Committed { height, .. } = outcome {
            self.committed_height = self.committed_height.max(height);
        }
        Ok((tx, node, outcome))
    }

    /// GET `path` from the next node in rotation.
    pub fn get(&mut self, path: &str) -> Result<(Node, u16, Value)> {
        let (node, _) = self.next_node()?;
        let (status, answer) = get_json(&self.agent, &format!("{}{path}", node.url))?;
        Ok((node, status, answer))
    }

    /// Reads a state route (e.g. `/v1/pledges/{id}`) and checks its answer as a client must,
    /// trusting only the genesis: the header's commit certificate against the genesis and the
    /// validator changes, then the proof of the value bytes against the header's state root.
    /// Returns the proven value bytes (`None`: proven absent) and the proven height.
    pub fn get_proven(&mut self, path: &str) -> Result<(Node, Option<Vec<u8>>, u64)> {
        let (node, status, answer) = self.get(path)?;
        ensure!(
            status == 200,
            "GET {path} from {} answered {status}: {answer}",
            node.name
        );
        let (value, height) = check_state_answer(&self.genesis, &answer)
            .with_context(|| format!("checking the answer of {} to GET {path}", node.name))?;
        Ok((node, value, height))
    }
}

/// Checks a state answer against the genesis (see [`Net::get_proven`]).
pub fn check_state_answer(genesis: &Genesis, answer: &Value) -> Result<(Option<Vec<u8>>, u64)> {
    let certified: CertifiedHeader =
        serde_json::from_value(answer["certified_header"].clone()).context("certified_header")?;
    let changes: Vec<ValidatorChange> =
        serde_json::from_value(answer["validator_changes"].clone()).context("validator_changes")?;
    let header = verify_certified_header(genesis, &changes, &certified)
        .context("the header's commit certificate")?;
    ensure!(
        answer["height"].as_u64() == Some(header.height),
        "the answer's height is not the certified header's"
    );
    let proof: StateProof = serde_json::from_value(answer["proof"].clone()).context("proof")?;
    let key = hex::decode(answer["key"].as_str().context("key")?).context("key hex")?;
    let value = match &answer["value_hex"] {
        Value::Null => None,
        text => Some(hex::decode(text.as_str().context("value_hex")?).context("value hex")?),
    };
    proof
        .verify(&header.state_root, &key, value.as_deref())
        .map_err(|error| anyhow!("state proof: {error}"))?;
    Ok((value, header.height))
}

/// SHA-256 of `bytes` as the ledger writes it.
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::sha256(bytes)
}
