//! A load generator for a running local network (run by hand, not in CI):
//!
//!   ipledger-load DIR [--txs N] [--concurrency C] [--parties P]
//!
//! Issue 6's fixed mix from P parties (default 10,000): 60 % evidence attestations (by the
//! organisations), 25 % work registrations, 10 % transfers of a work between parties, 5 % pledges
//! signed by owner, bank and trading center. Setup, timed apart and not counted: the trading
//! center enrols the P parties, and the works that the transfers and pledges move are
//! registered. Then N transactions (default 5,000) of the mix are submitted, spread over the
//! nodes in rotation, with at most C (default 512) in flight, each waiting for its commit
//! (`?wait=true`). Prints committed transactions and signatures per second, submit-to-commit
//! latency (p50, p99, max), each node's peak memory and stored bytes per committed transaction,
//! and, measured in the same run on this machine, raw Ed25519 single and batch verifications
//! per second with the ratio of committed tx/s to the batch limit for the validators sharing the
//! machine. Every submission must commit: a refusal fails the run.

use anyhow::{bail, ensure, Context, Result};
use ipledger_tests::{agent, outcome, post_tx, random_key, sha256, Net, Outcome, ORGANISATIONS};
use ledger_core::crypto::{verify_batch, SignedMessage, SigningKey};
use ledger_core::tx::{tx_sign_bytes, Action, PledgeTerms};
use ledger_core::types::{AssetId, EvidenceKind, Money, WorkKind};
use rand_core::{OsRng, RngCore};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Args {
    dir: String,
    txs: usize,
    concurrency: usize,
    parties: usize,
}

const USAGE: &str = "usage: ipledger-load DIR [--txs N] [--concurrency C] [--parties P]";

fn args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        dir: String::new(),
        txs: 5_000,
        concurrency: 512,
        parties: 10_000,
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--txs" => parsed.txs = args.next().context("--txs N")?.parse()?,
            "--concurrency" => {
                parsed.concurrency = args.next().context("--concurrency C")?.parse()?
            }
            "--parties" => parsed.parties = args.next().context("--parties P")?.parse()?,
            _ if parsed.dir.is_empty() && !arg.starts_with('-') => parsed.dir = arg,
            _ => bail!(USAGE),
        }
    }
    ensure!(!parsed.dir.is_empty(), USAGE);
    ensure!(
        parsed.txs > 0 && parsed.concurrency > 0 && parsed.parties >= 2,
        "N and C must be positive and P at least 2"
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

/// One transaction to submit: what it does and who signs it.
struct Job {
    action: Action,
    signers: Vec<String>,
}

/// What submitting a list of jobs came to.
struct Run {
    latencies: Vec<Duration>,
    signatures: usize,
    elapsed: Duration,
    first_height: u64,
    last_height: u64,
}

/// Submits `jobs` with at most `concurrency` in flight, each to the next node in rotation and
/// waiting for its commit; any refusal or error fails the run.
fn submit_all(net: &Net, jobs: &[Job], concurrency: usize, head: &AtomicU64) -> Result<Run> {
    let first_height = head.load(Ordering::Relaxed);
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(jobs.len()));
    let signatures = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let last_commit = Mutex::new(Instant::now());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.min(jobs.len()) {
            scope.spawn(|| {
                let agent = agent();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        break;
                    };
                    let node = &net.nodes[i % net.nodes.len()];
                    let signers: Vec<&str> = job.signers.iter().map(String::as_str).collect();
                    let height = head.load(Ordering::Relaxed);
                    let result = net.tx(job.action.clone(), &signers, height).and_then(|tx| {
                        let submitted = Instant::now();
                        let (status, answer) = post_tx(&agent, &node.url, &tx)?;
                        Ok((submitted, tx.signatures.len(), outcome(status, &answer)?))
                    });
                    match result {
                        Ok((submitted, signed, Outcome::Committed { height, .. })) => {
                            let now = Instant::now();
                            latencies.lock().unwrap().push(now - submitted);
                            signatures.fetch_add(signed, Ordering::Relaxed);
                            head.fetch_max(height, Ordering::Relaxed);
                            let mut last = last_commit.lock().unwrap();
                            *last = (*last).max(now);
                        }
                        Ok((_, _, Outcome::Refused { code, message })) => failures
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
    let failures = failures.into_inner().unwrap();
    if !failures.is_empty() {
        for failure in failures.iter().take(10) {
            eprintln!("failed: {failure}");
        }
        bail!("{} of {} submissions failed", failures.len(), jobs.len());
    }
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    let elapsed = *last_commit.lock().unwrap() - started;
    Ok(Run {
        latencies,
        signatures: signatures.into_inner(),
        elapsed,
        first_height,
        last_height: head.load(Ordering::Relaxed),
    })
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
    let attestors: Vec<&str> = ORGANISATIONS
        .iter()
        .copied()
        .filter(|org| *org != "regulator")
        .collect();
    let mut pool = pool.iter();
    (0..txs)
        .map(|i| {
            let party = &parties[i % parties.len()];
            match i % 20 {
                0..=11 => {
                    let attestor = attestors[i % attestors.len()];
                    Job {
                        action: Action::AttestEvidence {
                            attestor: attestor.into(),
                            evidence_hash: sha256(format!("evidence {run} {i}").as_bytes()),
                            kind: EvidenceKind::Document,
                            case_ref: None,
                            related_asset: None,
                        },
                        signers: vec![attestor.into()],
                    }
                }
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

fn print_run(what: &str, count: usize, run: &Run) {
    let tps = count as f64 / run.elapsed.as_secs_f64();
    println!(
        "{what}: {count} committed in {:.1} s (heights {}..{}): {tps:.0} tx/s, {:.0} signatures/s",
        run.elapsed.as_secs_f64(),
        run.first_height,
        run.last_height,
        run.signatures as f64 / run.elapsed.as_secs_f64()
    );
}

fn main() -> Result<()> {
    let args = args()?;
    let mut net = Net::open(&args.dir)?;
    let mut head = 0;
    for node in &net.nodes {
        head = head.max(net.status(node)?["height"].as_u64().context("height")?);
    }
    let head = AtomicU64::new(head);
    let mut run_id = [0u8; 4];
    OsRng.fill_bytes(&mut run_id);
    let run_id = hex::encode(run_id);

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
    println!(
        "setup: enrolling {} parties on {} nodes, at most {} in flight",
        parties.len(),
        net.nodes.len(),
        args.concurrency
    );
    let run = submit_all(&net, &enrolments, args.concurrency, &head)?;
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
    let run = submit_all(&net, &pool_jobs, args.concurrency, &head)?;
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
    println!(
        "submitting {} transactions of the mix (60 % evidence, 25 % works, 10 % transfers, 5 % pledges) from {} parties",
        jobs.len(),
        parties.len()
    );
    let run = submit_all(&net, &jobs, args.concurrency, &head)?;
    print_run("mix", jobs.len(), &run);
    let tps = jobs.len() as f64 / run.elapsed.as_secs_f64();
    let latencies = &run.latencies;
    println!(
        "submit-to-commit latency: p50 {} ms, p99 {} ms, max {} ms",
        percentile(latencies, 0.50).as_millis(),
        percentile(latencies, 0.99).as_millis(),
        latencies[latencies.len() - 1].as_millis()
    );
    // Raw Ed25519 verification on this machine, measured now (the network idle), one core:
    // single checks and ZIP-215 batches of 64 and 256, as the nodes use them.
    let single = verifications_per_second(1);
    let batch64 = verifications_per_second(64);
    let batch256 = verifications_per_second(256);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let validators = net.genesis.validators.len();
    // Every validator checks every signature once.
    let signatures_per_tx = run.signatures as f64 / jobs.len() as f64;
    let limit = batch256 * cores as f64 / validators as f64 / signatures_per_tx;
    println!(
        "raw Ed25519 on this machine, per core: single {single:.0}/s, batch of 64 {batch64:.0}/s, batch of 256 {batch256:.0}/s"
    );
    let sps = run.signatures as f64 / run.elapsed.as_secs_f64();
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
