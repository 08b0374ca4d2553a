//! A load generator for a running local network (run by hand, not in CI):
//!
//!   ipledger-load DIR [--txs N] [--batch B] [--concurrency C] [--parties P]
//!   ipledger-load DIR --rate R [--seconds S] [--batch B] [--concurrency C] [--parties P]
//!   ... [--prefill M]
//!
//! Issue 6's fixed mix from P parties (default 10,000): 60 % evidence attestations (by the
//! organisations), 25 % work registrations, 10 % transfers of a work between parties, 5 % pledges
//! signed by owner, bank and trading center. Setup, timed apart and not counted: the trading
//! center enrols the P parties, and the works that the transfers and pledges move are
//! registered. Then N transactions (default 5,000) of the mix are submitted.
//!
//! Every transaction is signed before its phase's clock starts (a real load's clients sign on
//! their own machines; here they would compete with the nodes for the same cores). They are
//! sent in batches of B (default 256) to `POST /v1/transactions/batch?wait=true`, each batch to
//! the next node in rotation, with at most C batches in flight (default 16); with `--batch 1`
//! each goes alone to `POST /v1/transactions?wait=true` (the route before batches), C in flight
//! (then default 512). A transaction's latency runs from when its batch was first sent to when
//! the node's answer reporting its commit arrived (a batch answers once all of it is
//! committed, so a transaction committed in an earlier block than the rest of its batch counts
//! the later one). Batches answered 503 (busy) and transactions answered 503 (`mempool_full`) are
//! sent again, their clock still running from the first send.
//!
//! That is a closed loop: each sender waits for its commits before it sends again, so the rate
//! follows the latency. With `--rate R` the mix is open-loop instead: R transactions per second
//! offered for S seconds (default 60; N = R × S), batch k due at k × B / R seconds after the start
//! whether or not earlier ones were answered, sent by up to C senders (default 64). Latency then
//! runs from when a batch was due, so a batch sent late because every sender was still waiting
//! counts its wait (no coordinated omission), and the report says how late sends fell.
//!
//! With `--prefill M`, M evidence attestations by the organisations are committed first (signed
//! a chunk at a time, closed-loop, timed and reported apart), so that the mix runs on a ledger
//! that size: how cost grows with the ledger.
//!
//! Prints committed transactions and signatures per second, submit-to-commit latency (p50, p99,
//! max), the CPU time each node and this generator used during the mix and the bytes each wrote
//! to disk per transaction of the mix (redb rewrites whole pages, so this is far above what the
//! store grows by), the time each node's block commits took during the mix (inserting rows, and
//! the durable commit that waits on the disk), each node's peak memory and stored bytes per
//! committed transaction, and, measured in the same run on this machine, raw Ed25519 single and
//! batch verifications per second with the ratio of committed tx/s to the batch limit for the
//! validators sharing the machine. Every submission must commit: a refusal fails the run.

use anyhow::{bail, ensure, Context, Result};
use ipledger_tests::{
    agent, outcome, post_batch, post_resending, random_key, sha256, Answers, Net, Outcome,
    ORGANISATIONS, RESEND_DEADLINE,
};
use ledger_core::crypto::{verify_batch, SignedMessage, SigningKey};
use ledger_core::tx::{tx_sign_bytes, Action, PledgeTerms, SignedTx, TxBody};
use ledger_core::types::{AssetId, EvidenceKind, Money, WorkKind};
use rand_core::{OsRng, RngCore};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Args {
    dir: String,
    txs: usize,
    batch: usize,
    concurrency: Option<usize>,
    parties: usize,
    /// Open-loop: transactions per second offered, and for how many seconds.
    rate: Option<(f64, f64)>,
    /// Attestations committed before setup.
    prefill: u64,
}

const USAGE: &str = "usage: ipledger-load DIR [--txs N | --rate R [--seconds S]] [--batch B] \
                     [--concurrency C] [--parties P] [--prefill M]";

/// The most transactions a batch may hold: the node's `BATCH_TXS_MAX`.
const BATCH_MAX: usize = 256;
/// Batches in flight by default; with batches of 256 that is 4,096 transactions, more than a
/// 10,000-transaction block interval's worth at the rates measured so far.
const BATCHES_IN_FLIGHT: usize = 16;
/// Single submissions in flight by default (`--batch 1`): the figure earlier runs used.
const SINGLES_IN_FLIGHT: usize = 512;
/// Senders of an open-loop run by default: at 10,000 tx/s in batches of 256 and 1.5 s of latency,
/// 59 batches are in flight.
const OPEN_LOOP_SENDERS: usize = 64;
/// How long an open-loop run offers its rate by default: issue 6's sustained minute.
const OPEN_LOOP_SECONDS: f64 = 60.0;
/// Prefill transactions signed and held at once: about 40 MB of JSON, so that a prefill of
/// millions does not hold them all.
const PREFILL_CHUNK: u64 = 65_536;
/// How many heights a pre-signed transaction stays valid: every phase must commit within it.
const LIFETIME_HEIGHTS: u64 = 1_000;

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        dir: String::new(),
        txs: 5_000,
        batch: BATCH_MAX,
        concurrency: None,
        parties: 10_000,
        rate: None,
        prefill: 0,
    };
    let mut txs = None;
    let mut rate: Option<f64> = None;
    let mut seconds = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--txs" => txs = Some(args.next().context("--txs N")?.parse()?),
            "--rate" => rate = Some(args.next().context("--rate R")?.parse()?),
            "--seconds" => seconds = Some(args.next().context("--seconds S")?.parse()?),
            "--batch" => parsed.batch = args.next().context("--batch B")?.parse()?,
            "--concurrency" => {
                parsed.concurrency = Some(args.next().context("--concurrency C")?.parse()?)
            }
            "--parties" => parsed.parties = args.next().context("--parties P")?.parse()?,
            "--prefill" => parsed.prefill = args.next().context("--prefill M")?.parse()?,
            _ if parsed.dir.is_empty() && !arg.starts_with('-') => parsed.dir = arg,
            _ => bail!(USAGE),
        }
    }
    ensure!(!parsed.dir.is_empty(), USAGE);
    match (rate, seconds, txs) {
        (None, None, txs) => parsed.txs = txs.unwrap_or(parsed.txs),
        (Some(rate), seconds, None) => {
            let seconds = seconds.unwrap_or(OPEN_LOOP_SECONDS);
            ensure!(
                rate >= 1.0 && seconds > 0.0,
                "R must be at least 1 and S positive"
            );
            parsed.rate = Some((rate, seconds));
            parsed.txs = (rate * seconds).round() as usize;
        }
        _ => bail!("--txs cannot go with --rate, and --seconds needs --rate\n{USAGE}"),
    }
    ensure!(
        parsed.txs > 0 && parsed.concurrency != Some(0) && parsed.parties >= 2,
        "N and C must be positive and P at least 2"
    );
    ensure!(
        (1..=BATCH_MAX).contains(&parsed.batch),
        "B must be between 1 and {BATCH_MAX} (the node's batch limit)"
    );
    Ok(parsed)
}

impl Args {
    /// How setup's transactions go: closed-loop, C requests in flight unless the mix is
    /// open-loop (then C counts its senders, and setup keeps the closed-loop default).
    fn setup_plan(&self) -> Plan {
        let default = if self.batch == 1 {
            SINGLES_IN_FLIGHT
        } else {
            BATCHES_IN_FLIGHT
        };
        Plan {
            batch: self.batch,
            in_flight: match self.rate {
                None => self.concurrency.unwrap_or(default),
                Some(_) => default,
            },
            rate: None,
        }
    }

    /// How the measured mix's transactions go.
    fn mix_plan(&self) -> Plan {
        match self.rate {
            None => self.setup_plan(),
            Some((rate, _)) => Plan {
                batch: self.batch,
                in_flight: self.concurrency.unwrap_or(OPEN_LOOP_SENDERS),
                rate: Some(rate),
            },
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

/// Raw Ed25519 verifications per second on one core: single checks and ZIP-215 batches of 64 and
/// 256, as the nodes use them. Measured before anything is sent, while the network is idle: after
/// the mix the nodes are still committing and the figures vary more.
struct RawEd25519 {
    single: f64,
    batch64: f64,
    batch256: f64,
}

impl RawEd25519 {
    fn measure() -> RawEd25519 {
        RawEd25519 {
            single: verifications_per_second(1),
            batch64: verifications_per_second(64),
            batch256: verifications_per_second(256),
        }
    }
}

/// Ed25519 verifications per second on one core, in batches of `batch` (1: single checks).
fn verifications_per_second(batch: usize) -> f64 {
    let keys: Vec<SigningKey> = (0..batch).map(|_| random_key()).collect();
    let messages: Vec<Vec<u8>> = (0..batch)
        .map(|i| tx_sign_bytes(&sha256(&i.to_le_bytes())))
        .collect();
    let signatures: Vec<_> = keys
        .iter()
        .zip(&messages)
        .map(|(key, message)| key.sign(message))
        .collect();
    let items: Vec<SignedMessage<'_>> = keys
        .iter()
        .zip(&messages)
        .zip(&signatures)
        .map(|((key, message), signature)| SignedMessage {
            signer: key.public_key(),
            message,
            signature: *signature,
        })
        .collect();
    let started = Instant::now();
    let mut verified = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        if batch == 1 {
            let item = &items[0];
            item.signer
                .verify(item.message, &item.signature)
                .expect("verifies");
        } else {
            verify_batch(&items).expect("verifies");
        }
        verified += batch as u64;
    }
    verified as f64 / started.elapsed().as_secs_f64()
}

/// Each node's peak and current memory (from /proc, by the pid file `scripts/local-net.sh`
/// writes), its stored bytes per committed transaction (its data directory over the ledger
/// size, genesis and engine write-ahead log included), and from its status what gossip dropped
/// and how it checked other validators' proposals (executed while streaming, or once complete).
fn report_nodes(net: &Net, dir: &str) -> Result<()> {
    for node in &net.nodes {
        let node_dir = std::path::Path::new(dir).join(format!("node-{}", node.name));
        let memory = std::fs::read_to_string(node_dir.join("node.pid"))
            .ok()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).ok())
            .map(|status| {
                let field = |name: &str| {
                    status
                        .lines()
                        .find(|line| line.starts_with(name))
                        .and_then(|line| line.split_whitespace().nth(1))
                        .and_then(|kb| kb.parse::<u64>().ok())
                        .map_or("?".to_owned(), |kb| format!("{} MiB", kb / 1024))
                };
                format!("peak {} now {}", field("VmHWM:"), field("VmRSS:"))
            })
            .unwrap_or_else(|| "memory not readable (no pid file or /proc)".into());
        let stored = directory_bytes(&node_dir.join("data"))?;
        let status = net.status(node)?;
        let ledger_size = status["ledger_size"].as_u64().context("ledger_size")?;
        let network = &status["network"];
        println!(
            "{:<16} {memory}; stores {} MiB, {} bytes per committed transaction ({ledger_size} committed); \
             gossip dropped {} out, {} batches in; proposals checked streaming {}, complete {}; \
             proposed {} built early; proposal budget {} transactions",
            node.name,
            stored / (1024 * 1024),
            stored.checked_div(ledger_size).unwrap_or(0),
            network["gossip_outbound_dropped"],
            network["gossip_inbound_dropped"],
            network["proposals_executed_streaming"],
            network["proposals_executed_complete"],
            network["proposals_built_early"],
            network["proposal_budget_txs"],
        );
    }
    Ok(())
}

fn directory_bytes(path: &std::path::Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
        let entry = entry?;
        let metadata = entry.metadata()?;
        total += if metadata.is_dir() {
            directory_bytes(&entry.path())?
        } else {
            metadata.len()
        };
    }
    Ok(total)
}

/// One transaction to submit: what it does and who signs it.
struct Job {
    action: Action,
    signers: Vec<String>,
}

/// `action` signed by `signers`, valid until `valid_until`, with a random salt.
fn sign(net: &Net, job: &Job, valid_until: u64) -> Result<SignedTx> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut tx = SignedTx::unsigned(TxBody {
        chain_id: net.genesis.chain_id.clone(),
        salt,
        valid_until,
        action: job.action.clone(),
    });
    for signer in &job.signers {
        tx.sign(net.key(signer)?);
    }
    Ok(tx)
}

/// A signed transaction ready to send: its id, JSON and signature count.
struct Ready {
    id: String,
    json: String,
    signatures: usize,
}

/// Signs every job (valid for [`LIFETIME_HEIGHTS`] past `height`) and serialises it.
fn prepare(net: &Net, jobs: &[Job], height: u64) -> Result<Vec<Ready>> {
    let valid_until = height + LIFETIME_HEIGHTS.min(net.genesis.params.tx_lifetime_max);
    jobs.iter()
        .map(|job| {
            let tx = sign(net, job, valid_until)?;
            Ok(Ready {
                id: tx.id().to_string(),
                json: serde_json::to_string(&tx)?,
                signatures: tx.signatures.len(),
            })
        })
        .collect()
}

/// What submitting a list of jobs came to.
struct Run {
    latencies: Vec<Duration>,
    /// Open-loop: how late the latest request was sent after it was due.
    latest_send: Duration,
    signatures: usize,
    elapsed: Duration,
    first_height: u64,
    last_height: u64,
}

/// How the transactions go to the nodes.
#[derive(Clone, Copy)]
struct Plan {
    /// Transactions per request; 1 uses the single route.
    batch: usize,
    /// Requests in flight.
    in_flight: usize,
    /// Open-loop: transactions per second offered; closed-loop (each sender waits for its
    /// commits before sending again) when `None`.
    rate: Option<f64>,
}

/// Sends `txs` to `node_url` and waits for every commit: the single route for one transaction,
/// the batch route otherwise, either through [`ipledger_tests::post_resending`] (a transaction
/// sent more than once and refused as `already_committed` is resolved by [`settle_resent`]).
/// Returns each transaction's answer in order, and whether the request was sent more than once.
fn post(
    agent: &ureq::Agent,
    node_url: &str,
    txs: &[&Ready],
    batch_route: bool,
) -> Result<(Answers, bool)> {
    if batch_route {
        let bodies: Vec<&str> = txs.iter().map(|tx| tx.json.as_str()).collect();
        return post_batch(agent, node_url, &bodies);
    }
    ensure!(txs.len() == 1, "the single route takes one transaction");
    let url = format!("{node_url}/v1/transactions?wait=true&timeout_ms=60000");
    let (status, json, resent) = post_resending(agent, &url, &txs[0].json)?;
    Ok((vec![(status, json)], resent))
}

/// For a transaction sent more than once and refused as `already_committed`: its commit, if
/// the node has it (the earlier send got it committed), as the single route would answer it.
fn settle_resent(
    agent: &ureq::Agent,
    node_url: &str,
    tx: &Ready,
) -> Option<(u16, serde_json::Value)> {
    let (status, answer) =
        ipledger_tests::get_json(agent, &format!("{node_url}/v1/transactions/{}", tx.id)).ok()?;
    (status == 200 && answer["status"] == "committed").then_some((status, answer))
}

/// Submits `ready` as `plan` says, each request to the next node in rotation, waiting for the
/// commits; any refusal or error fails the run. The clock starts at the first request. A
/// transaction's latency runs from when its request was due (open-loop) or sent (closed-loop).
fn submit_all(net: &Net, ready: &[Ready], plan: Plan, head: &AtomicU64) -> Result<Run> {
    let first_height = head.load(Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let requests = ready.len().div_ceil(plan.batch);
    let latencies = Mutex::new(Vec::with_capacity(ready.len()));
    let signatures = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let last_commit = Mutex::new(Instant::now());
    let latest_send = Mutex::new(Duration::ZERO);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..plan.in_flight.min(requests) {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    if k >= requests {
                        break;
                    }
                    let node = &net.nodes[k % net.nodes.len()];
                    let end = ready.len().min((k + 1) * plan.batch);
                    let mut waiting: Vec<&Ready> = ready[k * plan.batch..end].iter().collect();
                    let submitted = match plan.rate {
                        None => Instant::now(),
                        Some(rate) => {
                            let due =
                                started + Duration::from_secs_f64((k * plan.batch) as f64 / rate);
                            std::thread::sleep(due.saturating_duration_since(Instant::now()));
                            let late = Instant::now() - due;
                            let mut latest = latest_send.lock().unwrap();
                            *latest = (*latest).max(late);
                            due
                        }
                    };
                    let retry_until = submitted + RESEND_DEADLINE;
                    while !waiting.is_empty() {
                        let (answers, resent) =
                            match post(&agent, &node.url, &waiting, plan.batch > 1) {
                                Ok(answers) => answers,
                                Err(error) => {
                                    failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("{}: {error:#}", node.name));
                                    break;
                                }
                            };
                        let now = Instant::now();
                        let mut again = Vec::new();
                        for (tx, (status, answer)) in waiting.iter().zip(answers) {
                            // The mempool is full: send it again shortly.
                            if status == 503 && now < retry_until {
                                again.push(*tx);
                                continue;
                            }
                            let (status, answer) = match (resent, status) {
                                (true, 422) if answer["error"]["code"] == "already_committed" => {
                                    settle_resent(&agent, &node.url, tx).unwrap_or((status, answer))
                                }
                                _ => (status, answer),
                            };
                            match outcome(status, &answer) {
                                Ok(Outcome::Committed { height, .. }) => {
                                    latencies.lock().unwrap().push(now - submitted);
                                    signatures.fetch_add(tx.signatures, Ordering::Relaxed);
                                    head.fetch_max(height, Ordering::Relaxed);
                                    let mut last = last_commit.lock().unwrap();
                                    *last = (*last).max(now);
                                }
                                Ok(Outcome::Refused { code, message }) => failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{}: refused {code}: {message}", node.name)),
                                Err(error) => failures
                                    .lock()
                                    .unwrap()
                                    .push(format!("{}: {error:#}", node.name)),
                            }
                        }
                        if !again.is_empty() {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        waiting = again;
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        for failure in failures.iter().take(10) {
            eprintln!("failed: {failure}");
        }
        bail!("{} of {} transactions failed", failures.len(), ready.len());
    }
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    let elapsed = *last_commit.lock().unwrap() - started;
    Ok(Run {
        latencies,
        latest_send: latest_send.into_inner().unwrap(),
        signatures: signatures.into_inner(),
        elapsed,
        first_height,
        last_height: head.load(Ordering::Relaxed),
    })
}

/// What a process has used so far, from /proc: CPU seconds (user + system) and bytes it caused
/// to be written to the disk (`write_bytes` of /proc/PID/io: pages written back, not bytes
/// handed to `write`, so a page rewritten before writeback counts once).
#[derive(Clone, Copy)]
struct Usage {
    cpu_seconds: f64,
    written_bytes: u64,
}

impl Usage {
    fn of(pid: &str) -> Option<Usage> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
        let written_bytes = io
            .lines()
            .find_map(|line| line.strip_prefix("write_bytes:"))?
            .trim()
            .parse()
            .ok()?;
        Some(Usage {
            // The kernel's USER_HZ is 100 on every Linux this runs on.
            cpu_seconds: ticks / 100.0,
            written_bytes,
        })
    }

    fn since(self, before: Usage) -> Usage {
        Usage {
            cpu_seconds: self.cpu_seconds - before.cpu_seconds,
            written_bytes: self.written_bytes.saturating_sub(before.written_bytes),
        }
    }
}

/// Time a node's block commits have taken since it started, from its status.
struct CommitTimes {
    writing: Duration,
    durable: Duration,
}

/// Each node's [`CommitTimes`] so far, in node order.
fn commit_times(net: &Net) -> Result<Vec<CommitTimes>> {
    net.nodes
        .iter()
        .map(|node| {
            let status = net.status(node)?;
            let millis = |field: &str| {
                status["network"][field]
                    .as_u64()
                    .map(Duration::from_millis)
                    .with_context(|| format!("{}: status has no network.{field}", node.name))
            };
            Ok(CommitTimes {
                writing: millis("commit_writing_ms")?,
                durable: millis("commit_durable_ms")?,
            })
        })
        .collect()
}

/// Each node's pid (from the pid file `scripts/local-net.sh` writes), by node name.
fn node_pids(net: &Net, dir: &str) -> Vec<(String, Option<String>)> {
    net.nodes
        .iter()
        .map(|node| {
            let pid = std::fs::read_to_string(
                std::path::Path::new(dir)
                    .join(format!("node-{}", node.name))
                    .join("node.pid"),
            )
            .ok()
            .map(|pid| pid.trim().to_owned());
            (node.name.clone(), pid)
        })
        .collect()
}

/// What each node and this process have used so far.
fn usage_snapshot(pids: &[(String, Option<String>)]) -> Vec<Option<Usage>> {
    pids.iter()
        .map(|(_, pid)| pid.as_deref().and_then(Usage::of))
        .chain(std::iter::once(Usage::of("self")))
        .collect()
}

/// The jobs of the measured mix, in a fixed order: out of every 20, 12 attestations, 5 work
/// registrations, 2 transfers and 1 pledge. `pool` holds the works (and their owners) set up for
/// the transfers and pledges, each moved or pledged once.
fn mix(
    txs: usize,
    parties: &[String],
    pool: &[(AssetId, String)],
    run: &str,
    genesis_time_ms: u64,
) -> Vec<Job> {
    let attestors = attestors();
    let mut pool = pool.iter();
    (0..txs)
        .map(|i| {
            let party = &parties[i % parties.len()];
            match i % 20 {
                0..=11 => attest(
                    attestors[i % attestors.len()],
                    &format!("evidence {run} {i}"),
                ),
                12..=16 => register_work(party, &format!("{run} {i}")),
                17 | 18 => {
                    let (asset, owner) = pool.next().expect("one pooled work per transfer");
                    let to = parties[(i + 1) % parties.len()].clone();
                    let to = if &to == owner {
                        parties[(i + 2) % parties.len()].clone()
                    } else {
                        to
                    };
                    Job {
                        action: Action::TransferAsset {
                            asset: asset.clone(),
                            to: to.as_str().into(),
                        },
                        signers: vec![owner.clone()],
                    }
                }
                _ => {
                    let (asset, owner) = pool.next().expect("one pooled work per pledge");
                    let bank = if i % 40 == 19 { "bank-a" } else { "bank-b" };
                    Job {
                        action: Action::RegisterPledge(PledgeTerms {
                            assets: vec![asset.clone()],
                            pledgor: owner.as_str().into(),
                            pledgee: bank.into(),
                            registrar: "trading-center".into(),
                            secured_amount: Money {
                                minor_units: 1_000_000,
                                currency: "CNY".into(),
                            },
                            maturity_ms: genesis_time_ms + 365 * 24 * 3_600_000,
                            first_rank: false,
                            valuations: Vec::new(),
                        }),
                        signers: vec![owner.clone(), bank.into(), "trading-center".into()],
                    }
                }
            }
        })
        .collect()
}

/// The organisations that may attest evidence: all but the regulator, which signs nothing.
fn attestors() -> Vec<&'static str> {
    ORGANISATIONS
        .iter()
        .copied()
        .filter(|org| *org != "regulator")
        .collect()
}

/// Commits `count` evidence attestations by the organisations, [`PREFILL_CHUNK`] at a time.
fn prefill(net: &Net, count: u64, run_id: &str, plan: Plan, head: &AtomicU64) -> Result<()> {
    let attestors = attestors();
    println!("prefill: {count} evidence attestations, {PREFILL_CHUNK} signed at a time");
    let started = Instant::now();
    let mut signing = Duration::ZERO;
    let mut signatures = 0;
    for first in (0..count).step_by(PREFILL_CHUNK as usize) {
        let signed = Instant::now();
        let jobs: Vec<Job> = (first..count.min(first + PREFILL_CHUNK))
            .map(|k| {
                let attestor = attestors[k as usize % attestors.len()];
                attest(attestor, &format!("prefill {run_id} {k}"))
            })
            .collect();
        let ready = prepare(net, &jobs, head.load(Ordering::Relaxed))?;
        signing += signed.elapsed();
        signatures += submit_all(net, &ready, plan, head)?.signatures;
    }
    let elapsed = started.elapsed();
    println!(
        "prefill: {count} committed in {:.1} s ({:.1} s of it signing, here): {:.0} tx/s, {:.0} signatures/s, head {}",
        elapsed.as_secs_f64(),
        signing.as_secs_f64(),
        count as f64 / elapsed.as_secs_f64(),
        signatures as f64 / elapsed.as_secs_f64(),
        head.load(Ordering::Relaxed)
    );
    Ok(())
}

/// `attestor` attests a document whose hash is that of `what`.
fn attest(attestor: &str, what: &str) -> Job {
    Job {
        action: Action::AttestEvidence {
            attestor: attestor.into(),
            evidence_hash: sha256(what.as_bytes()),
            kind: EvidenceKind::Document,
            case_ref: None,
            related_asset: None,
        },
        signers: vec![attestor.into()],
    }
}

fn register_work(owner: &str, what: &str) -> Job {
    Job {
        action: Action::RegisterWork {
            content_hash: sha256(format!("work {what}").as_bytes()),
            title: format!("Work {what}"),
            kind: WorkKind::Music,
            authors: vec![owner.into()],
            owner: owner.into(),
        },
        signers: vec![owner.into()],
    }
}

impl Run {
    /// `count` transactions over the run's time, per second.
    fn per_second(&self, count: usize) -> f64 {
        count as f64 / self.elapsed.as_secs_f64()
    }
}

fn print_run(what: &str, count: usize, run: &Run) {
    let tps = run.per_second(count);
    println!(
        "{what}: {count} committed in {:.1} s (heights {}..{}): {tps:.0} tx/s, {:.0} signatures/s",
        run.elapsed.as_secs_f64(),
        run.first_height,
        run.last_height,
        run.per_second(run.signatures)
    );
}

fn main() -> std::process::ExitCode {
    ipledger_tests::exit_with(load())
}

/// The load, from the command line to the report.
fn load() -> Result<()> {
    let args = args()?;
    let mut net = Net::open(&args.dir)?;
    let mut head = 0;
    for node in &net.nodes {
        head = head.max(net.status(node)?["height"].as_u64().context("height")?);
    }
    let head = AtomicU64::new(head);
    let raw = RawEd25519::measure();
    let setup_plan = args.setup_plan();
    let plan = args.mix_plan();
    let mut run_id = [0u8; 4];
    OsRng.fill_bytes(&mut run_id);
    let run_id = hex::encode(run_id);
    if args.prefill > 0 {
        prefill(&net, args.prefill, &run_id, setup_plan, &head)?;
        report_nodes(&net, &args.dir)?;
    }

    // Setup: the parties, then the works the transfers and pledges will move.
    let parties: Vec<String> = (0..args.parties)
        .map(|k| format!("holder-{run_id}-{k}"))
        .collect();
    let enrolments: Vec<Job> = parties
        .iter()
        .map(|party| {
            let key = random_key();
            let job = Job {
                action: Action::EnrollRightsHolder {
                    registrar: "trading-center".into(),
                    party: party.as_str().into(),
                    name: format!("Load party {party}"),
                    key: key.public_key(),
                    id_document_hash: sha256(party.as_bytes()),
                },
                signers: vec!["trading-center".into(), party.clone()],
            };
            net.add_key(party, key);
            job
        })
        .collect();
    let route = if plan.batch == 1 {
        "one transaction per request (POST /v1/transactions)".to_owned()
    } else {
        format!("batches of {} (POST /v1/transactions/batch)", plan.batch)
    };
    println!(
        "setup: enrolling {} parties on {} nodes, {route}, at most {} requests in flight",
        parties.len(),
        net.nodes.len(),
        setup_plan.in_flight
    );
    let ready = prepare(&net, &enrolments, head.load(Ordering::Relaxed))?;
    let run = submit_all(&net, &ready, setup_plan, &head)?;
    print_run("setup: enrolments", enrolments.len(), &run);
    let pooled = args.txs.div_ceil(20) * 3;
    let pool: Vec<(AssetId, String)> = (0..pooled)
        .map(|k| {
            let owner = parties[k % parties.len()].clone();
            let what = format!("{run_id} pool {k}");
            let asset = AssetId::Work {
                content_hash: sha256(format!("work {what}").as_bytes()),
            };
            (asset, owner)
        })
        .collect();
    let pool_jobs: Vec<Job> = pool
        .iter()
        .enumerate()
        .map(|(k, (_, owner))| register_work(owner, &format!("{run_id} pool {k}")))
        .collect();
    let ready = prepare(&net, &pool_jobs, head.load(Ordering::Relaxed))?;
    let run = submit_all(&net, &ready, setup_plan, &head)?;
    print_run(
        "setup: works for transfers and pledges",
        pool_jobs.len(),
        &run,
    );

    // The measured mix.
    let jobs = mix(
        args.txs,
        &parties,
        &pool,
        &run_id,
        net.genesis.genesis_time_ms,
    );
    let pace = match args.rate {
        None => format!("closed-loop, at most {} requests in flight", plan.in_flight),
        Some((rate, seconds)) => format!(
            "open-loop, {rate:.0} tx/s offered for {seconds:.0} s by up to {} senders",
            plan.in_flight
        ),
    };
    println!(
        "submitting {} transactions of the mix (60 % evidence, 25 % works, 10 % transfers, 5 % pledges) from {} parties, {route}, {pace}",
        jobs.len(),
        parties.len(),
    );
    let ready = prepare(&net, &jobs, head.load(Ordering::Relaxed))?;
    let pids = node_pids(&net, &args.dir);
    let usage_before = usage_snapshot(&pids);
    let commits_before = commit_times(&net)?;
    let run = submit_all(&net, &ready, plan, &head)?;
    let usage_after = usage_snapshot(&pids);
    let commits_after = commit_times(&net)?;
    print_run("mix", jobs.len(), &run);
    let tps = run.per_second(jobs.len());
    if let Some((rate, seconds)) = args.rate {
        // Sustained means every transaction committed at the offered pace: the last commit
        // within a few block intervals of the last send.
        println!(
            "open-loop: {rate:.0} tx/s offered for {seconds:.0} s, {:.0} tx/s committed ({:.0} % of the offer); the latest request went {} ms after it was due",
            tps,
            100.0 * tps / rate,
            run.latest_send.as_millis()
        );
    }
    let latencies = &run.latencies;
    println!(
        "submit-to-commit latency: p50 {} ms, p99 {} ms, max {} ms",
        percentile(latencies, 0.50).as_millis(),
        percentile(latencies, 0.99).as_millis(),
        latencies[latencies.len() - 1].as_millis()
    );
    let names = pids
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(std::iter::once("ipledger-load"));
    let mut used = Vec::new();
    let mut written = Vec::new();
    let mut total = 0.0;
    for ((name, before), after) in names.zip(&usage_before).zip(&usage_after) {
        match (before, after) {
            (Some(before), Some(after)) => {
                let usage = after.since(*before);
                used.push(format!("{name} {:.1} s", usage.cpu_seconds));
                written.push(format!(
                    "{name} {:.1} KB",
                    usage.written_bytes as f64 / 1000.0 / jobs.len() as f64
                ));
                total += usage.cpu_seconds;
            }
            _ => {
                used.push(format!("{name} ?"));
                written.push(format!("{name} ?"));
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "CPU used during the mix: {}; {:.0}% of {cores} cores over {:.1} s",
        used.join(", "),
        100.0 * total / (cores as f64 * run.elapsed.as_secs_f64()),
        run.elapsed.as_secs_f64()
    );
    println!(
        "written to disk during the mix, per transaction of the mix: {}",
        written.join(", ")
    );
    let commits: Vec<String> = net
        .nodes
        .iter()
        .zip(commits_before.iter().zip(&commits_after))
        .map(|(node, (before, after))| {
            format!(
                "{} {:.1} s writing + {:.1} s durable",
                node.name,
                after.writing.saturating_sub(before.writing).as_secs_f64(),
                after.durable.saturating_sub(before.durable).as_secs_f64()
            )
        })
        .collect();
    println!(
        "time in block commits during the mix (waiting for the writer, checks and inserts, then the durable commit: pages written out and fsynced, the decision unanswered): {}",
        commits.join(", ")
    );
    let RawEd25519 {
        single,
        batch64,
        batch256,
    } = raw;
    let validators = net.genesis.validators.len();
    // Every validator checks every signature once.
    let signatures_per_tx = run.signatures as f64 / jobs.len() as f64;
    let limit = batch256 * cores as f64 / validators as f64 / signatures_per_tx;
    println!(
        "raw Ed25519 on this machine, per core, measured before the run: single {single:.0}/s, batch of 64 {batch64:.0}/s, batch of 256 {batch256:.0}/s"
    );
    let sps = run.per_second(run.signatures);
    println!(
        "signatures verified: {sps:.0}/s per validator ({signatures_per_tx:.2} per transaction), {:.0}/s on the machine ({validators} validators)",
        sps * validators as f64
    );
    println!(
        "batch limit for {validators} validators on {cores} cores: {limit:.0} tx/s; committed tx/s is {:.1}% of it",
        100.0 * tps / limit
    );
    report_nodes(&net, &args.dir)
}
