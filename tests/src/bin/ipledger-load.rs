//! A load generator for a running local network (run by hand, not in CI):
//!
//!   ipledger-load DIR [--txs N] [--concurrency C]
//!
//! Submits N evidence attestations (default 5,000), each signed by one of the organisations
//! (all but the regulator) in turn with a random evidence hash, spread over the nodes in
//! rotation, with at most C (default 512) submissions in flight, each waiting for its commit
//! (`?wait=true`). Prints committed transactions per second, submit-to-commit latency (p50,
//! p99, max), signatures verified per second, each node's peak memory and stored bytes per
//! committed transaction, and, measured in the same run on this machine, raw Ed25519 single and
//! batch verifications per second with the ratio of committed tx/s to the batch limit for the
//! validators sharing the machine.
//! Transactions are signed just before submission, valid for 500 heights past the highest
//! height seen (within the genesis' `tx_lifetime_max`).

use anyhow::{bail, ensure, Context, Result};
use ipledger_tests::{agent, outcome, post_tx, random_key, sha256, Net, Outcome, ORGANISATIONS};
use ledger_core::crypto::{verify_batch, SignedMessage, SigningKey};
use ledger_core::tx::{tx_sign_bytes, Action, SignedTx, TxBody};
use ledger_core::types::EvidenceKind;
use rand_core::{OsRng, RngCore};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const LIFETIME: u64 = 500;

struct Args {
    dir: String,
    txs: usize,
    concurrency: usize,
}

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        dir: String::new(),
        txs: 5_000,
        concurrency: 512,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--txs" => parsed.txs = args.next().context("--txs N")?.parse()?,
            "--concurrency" => {
                parsed.concurrency = args.next().context("--concurrency C")?.parse()?
            }
            _ if parsed.dir.is_empty() && !arg.starts_with('-') => parsed.dir = arg,
            _ => bail!("usage: ipledger-load DIR [--txs N] [--concurrency C]"),
        }
    }
    ensure!(
        !parsed.dir.is_empty(),
        "usage: ipledger-load DIR [--txs N] [--concurrency C]"
    );
    ensure!(
        parsed.txs > 0 && parsed.concurrency > 0,
        "N and C must be positive"
    );
    Ok(parsed)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
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
/// writes) and its stored bytes per committed transaction (its data directory over the ledger
/// size, genesis and engine write-ahead log included).
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
        let ledger_size = net.status(node)?["ledger_size"]
            .as_u64()
            .context("ledger_size")?;
        println!(
            "{:<16} {memory}; stores {} MiB, {} bytes per committed transaction ({ledger_size} committed)",
            node.name,
            stored / (1024 * 1024),
            stored.checked_div(ledger_size).unwrap_or(0)
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

fn main() -> Result<()> {
    let args = args()?;
    let net = Net::open(&args.dir)?;
    // Every organisation but the regulator, which may not attest.
    let keys: Vec<(&str, &SigningKey)> = ORGANISATIONS
        .iter()
        .filter(|org| **org != "regulator")
        .map(|org| Ok((*org, net.key(org)?)))
        .collect::<Result<_>>()?;
    let mut head = 0;
    for node in &net.nodes {
        head = head.max(net.status(node)?["height"].as_u64().context("height")?);
    }
    ensure!(
        LIFETIME <= net.genesis.params.tx_lifetime_max,
        "tx_lifetime_max {} is below {LIFETIME}",
        net.genesis.params.tx_lifetime_max
    );
    println!(
        "submitting {} evidence attestations to {} nodes, at most {} in flight, from height {head}",
        args.txs,
        net.nodes.len(),
        args.concurrency
    );
    let seen_height = AtomicU64::new(head);
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(args.txs));
    let failures = Mutex::new(Vec::new());
    let last_commit = Mutex::new(Instant::now());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..args.concurrency {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= args.txs {
                        break;
                    }
                    let (org, key) = keys[i % keys.len()];
                    let node = &net.nodes[i % net.nodes.len()];
                    let mut salt = [0u8; 16];
                    OsRng.fill_bytes(&mut salt);
                    let mut tx = SignedTx::unsigned(TxBody {
                        chain_id: net.genesis.chain_id.clone(),
                        salt,
                        valid_until: seen_height.load(Ordering::Relaxed) + LIFETIME,
                        action: Action::AttestEvidence {
                            attestor: org.into(),
                            evidence_hash: sha256(&salt),
                            kind: EvidenceKind::Document,
                            case_ref: None,
                            related_asset: None,
                        },
                    });
                    tx.sign(key);
                    let submitted = Instant::now();
                    let result = post_tx(&agent, &node.url, &tx)
                        .and_then(|(status, answer)| outcome(status, &answer));
                    match result {
                        Ok(Outcome::Committed { height, .. }) => {
                            let now = Instant::now();
                            latencies.lock().unwrap().push(now - submitted);
                            seen_height.fetch_max(height, Ordering::Relaxed);
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
            });
        }
    });
    let elapsed = *last_commit.lock().unwrap() - started;
    let mut latencies = latencies.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    latencies.sort();
    let committed = latencies.len();
    let end_height = seen_height.load(Ordering::Relaxed);
    let tps = committed as f64 / elapsed.as_secs_f64();
    println!(
        "committed {committed} of {} in {:.1} s (heights {head}..{end_height}): {tps:.0} tx/s",
        args.txs,
        elapsed.as_secs_f64()
    );
    if committed > 0 {
        println!(
            "submit-to-commit latency: p50 {} ms, p99 {} ms, max {} ms",
            percentile(&latencies, 0.50).as_millis(),
            percentile(&latencies, 0.99).as_millis(),
            latencies[committed - 1].as_millis()
        );
    }
    // Raw Ed25519 verification on this machine, measured now (the network idle), one core:
    // single checks and ZIP-215 batches of 64 and 256, as the nodes use them.
    let single = verifications_per_second(1);
    let batch64 = verifications_per_second(64);
    let batch256 = verifications_per_second(256);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let validators = net.genesis.validators.len();
    // Every validator checks every signature once (evidence attestations carry one).
    let limit = batch256 * cores as f64 / validators as f64;
    println!(
        "raw Ed25519 on this machine, per core: single {single:.0}/s, batch of 64 {batch64:.0}/s, batch of 256 {batch256:.0}/s"
    );
    println!(
        "signatures verified: {:.0}/s per validator, {:.0}/s on the machine ({validators} validators)",
        tps,
        tps * validators as f64
    );
    println!(
        "batch limit for {validators} validators on {cores} cores: {limit:.0} tx/s; committed tx/s is {:.1}% of it",
        100.0 * tps / limit
    );
    report_nodes(&net, &args.dir)?;
    if !failures.is_empty() {
        for failure in failures.iter().take(10) {
            eprintln!("failed: {failure}");
        }
        bail!("{} of {} submissions failed", failures.len(), args.txs);
    }
    Ok(())
}
