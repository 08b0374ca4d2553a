//! A load generator for a running local network (run by hand, not in CI):
//!
//!   ipledger-load DIR [--txs N] [--concurrency C]
//!
//! Submits N evidence attestations (default 5,000), each signed by one of the organisations
//! (all but the regulator) in turn with a random evidence hash, spread over the nodes in
//! rotation, with at most C (default 512) submissions in flight, each waiting for its commit
//! (`?wait=true`). Prints committed transactions per second, submit-to-commit latency (p50,
//! p99, max), and, measured in the same run on this machine, raw Ed25519 verifications per
//! second with the ratio of the two.
//! Transactions are signed just before submission, valid for 500 heights past the highest
//! height seen (the genesis allows at most `tx_lifetime_max`, 600).

use anyhow::{bail, ensure, Context, Result};
use ipledger_tests::{agent, outcome, post_tx, random_key, sha256, Net, Outcome, ORGANISATIONS};
use ledger_core::crypto::SigningKey;
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
    // Raw single Ed25519 verifications on this machine, measured now (the network idle).
    let key = random_key();
    let message = tx_sign_bytes(&sha256(b"a transaction id"));
    let signature = key.sign(&message);
    let public = key.public_key();
    let bench_started = Instant::now();
    let mut verifications = 0u64;
    while bench_started.elapsed() < Duration::from_secs(2) {
        for _ in 0..100 {
            public.verify(&message, &signature).expect("verifies");
        }
        verifications += 100;
    }
    let vps = verifications as f64 / bench_started.elapsed().as_secs_f64();
    println!(
        "raw Ed25519 verifications on this machine (one core): {vps:.0}/s; committed tx/s is {:.2}% of it ({:.0} verifications per committed tx)",
        100.0 * tps / vps,
        vps / tps
    );
    if !failures.is_empty() {
        for failure in failures.iter().take(10) {
            eprintln!("failed: {failure}");
        }
        bail!("{} of {} submissions failed", failures.len(), args.txs);
    }
    Ok(())
}
