//! How fast ledger-core checks signatures and applies transactions, in one run:
//!
//! 1. raw Ed25519 single verifications per second (`PublicKey::verify`, ZIP-215 through
//!    ed25519-consensus);
//! 2. raw batch verification per second (`crypto::verify_batch`, batches of 64 and 256);
//! 3. transactions applied per second *with* signature checks: `VerifiedTx::verify_many`, then
//!    `BlockBuilder::push` for each transaction and `finish` (state root), committing blocks of
//!    1,000 transactions into the testkit's `MemoryStateStore`, on a mix of 60% evidence
//!    attestations, 25% work registrations, 10% transfers and 5% pledges signed by three parties,
//!    from 1,000 enrolled rights holders (enrolment and the registration of the assets that are
//!    later transferred or pledged are set up first and not measured; neither is signing);
//! 4. the ratios: applied tx/s ÷ single verifications/s, and signatures verified per second
//!    during apply.
//!
//! Run with `cargo bench -p ledger-core` (about a minute). Everything runs on one thread.

use ledger_core::crypto::{verify_batch, Digest, PublicKey, Signature, SignedMessage};
use ledger_core::execute::{BlockBuilder, Parent};
use ledger_core::rules::{BlockContext, VerifiedTx};
use ledger_core::state_tree::StateTree;
use ledger_core::testkit::{
    certify, test_key, TestChain, TEST_BLOCK_INTERVAL_MS, TEST_GENESIS_TIME_MS,
};
use ledger_core::tx::{tx_sign_bytes, Action, PledgeTerms, SignedTx};
use ledger_core::types::{AssetId, EvidenceKind, Money, PartyId, WorkKind};
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Rights holders enrolled before the measurement.
const HOLDERS: usize = 1_000;
/// Transactions per measured block.
const BLOCK_TXS: usize = 1_000;
/// Blocks applied before measuring (not counted).
const WARMUP_BLOCKS: usize = 2;
/// Measured blocks: at least this many...
const MEASURED_BLOCKS_MIN: usize = 5;
/// ...and until this much apply time is measured.
const APPLY_TIME: Duration = Duration::from_secs(8);
/// The most measured blocks, whatever the time.
const MEASURED_BLOCKS_MAX: usize = 40;
/// Warm-up and measurement time of each raw signature benchmark.
const CRYPTO_WARMUP: Duration = Duration::from_millis(500);
const CRYPTO_TIME: Duration = Duration::from_secs(3);

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from the harness is ignored.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let started = Instant::now();
    println!("ledger-core apply benchmark (one thread)");
    println!();

    let samples = signature_samples(256);
    let single = rate(CRYPTO_WARMUP, CRYPTO_TIME, {
        let mut i = 0;
        move || {
            let (key, message, signature) = &samples[i % samples.len()];
            key.verify(message, signature).expect("valid signature");
            i += 1;
            1
        }
    });
    let samples = signature_samples(256);
    let items: Vec<SignedMessage<'_>> = samples
        .iter()
        .map(|(signer, message, signature)| SignedMessage {
            signer: *signer,
            message,
            signature: *signature,
        })
        .collect();
    let batch_64 = rate(CRYPTO_WARMUP, CRYPTO_TIME, || {
        let mut done = 0;
        for chunk in items.chunks(64) {
            verify_batch(black_box(chunk)).expect("valid batch");
            done += chunk.len() as u64;
        }
        done
    });
    let batch_256 = rate(CRYPTO_WARMUP, CRYPTO_TIME, || {
        verify_batch(black_box(&items)).expect("valid batch");
        items.len() as u64
    });

    let apply = apply_benchmark();

    let rows = [
        (
            "Ed25519 single verify (PublicKey::verify)",
            format!("{:>10.0} sig/s", single.per_second()),
            format!("{:>7.1} µs/sig", single.micros_per_op()),
        ),
        (
            "Ed25519 batch verify, batches of 64",
            format!("{:>10.0} sig/s", batch_64.per_second()),
            format!(
                "{:>7.2}x single",
                batch_64.per_second() / single.per_second()
            ),
        ),
        (
            "Ed25519 batch verify, batches of 256",
            format!("{:>10.0} sig/s", batch_256.per_second()),
            format!(
                "{:>7.2}x single",
                batch_256.per_second() / single.per_second()
            ),
        ),
        (
            "apply with signature checks",
            format!("{:>10.0} tx/s", apply.tx_per_second()),
            format!("{:>7.1} µs/tx", 1e6 / apply.tx_per_second()),
        ),
    ];
    println!("{:<46} {:>16} {:>16}", "measurement", "rate", "cost");
    println!("{}", "-".repeat(80));
    for (what, rate, cost) in rows {
        println!("{what:<46} {rate:>16} {cost:>16}");
    }
    println!();
    println!(
        "apply: {} blocks of {} txs measured ({} signatures, {:.2} per tx) after {} warm-up \
         blocks, {} holders enrolled",
        apply.blocks,
        BLOCK_TXS,
        apply.signatures,
        apply.signatures as f64 / apply.txs as f64,
        WARMUP_BLOCKS,
        HOLDERS
    );
    let total = apply.total().as_secs_f64();
    for (phase, time) in [
        ("VerifiedTx::verify_many", apply.verify),
        ("BlockBuilder::push (rules)", apply.push),
        ("BlockBuilder::finish (state root)", apply.finish),
        ("MemoryStateStore::write", apply.write),
    ] {
        println!(
            "  {phase:<40} {:>8.1} ms/block {:>6.1}%",
            time.as_secs_f64() * 1e3 / apply.blocks as f64,
            100.0 * time.as_secs_f64() / total
        );
    }
    println!();
    println!("ratios");
    println!(
        "  applied tx/s ÷ single verifications/s        {:>10.3}",
        apply.tx_per_second() / single.per_second()
    );
    println!(
        "  signatures verified per second during apply  {:>10.0} sig/s",
        apply.signatures as f64 / total
    );
    println!(
        "  verify_many alone (signatures ÷ its time)    {:>10.0} sig/s",
        apply.signatures as f64 / apply.verify.as_secs_f64()
    );
    println!(
        "  share of apply time verifying signatures     {:>9.1}%",
        100.0 * apply.verify.as_secs_f64() / total
    );
    println!();
    println!(
        "total benchmark time {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Operations done in some time.
struct Rate {
    ops: u64,
    time: Duration,
}

impl Rate {
    fn per_second(&self) -> f64 {
        self.ops as f64 / self.time.as_secs_f64()
    }

    fn micros_per_op(&self) -> f64 {
        self.time.as_secs_f64() * 1e6 / self.ops as f64
    }
}

/// Runs `step` (which returns how many operations it did) for `warmup`, then measures it for at
/// least `time`.
fn rate(warmup: Duration, time: Duration, mut step: impl FnMut() -> u64) -> Rate {
    let start = Instant::now();
    while start.elapsed() < warmup {
        step();
    }
    let start = Instant::now();
    let mut ops = 0;
    while start.elapsed() < time {
        ops += step();
    }
    Rate {
        ops,
        time: start.elapsed(),
    }
}

/// `n` signatures by `n` distinct keys over transaction-sized sign bytes.
fn signature_samples(n: usize) -> Vec<(PublicKey, Vec<u8>, Signature)> {
    (0..n)
        .map(|i| {
            let key = test_key(&format!("bench-signer-{i}"));
            let message = tx_sign_bytes(&Digest::sha256(&i.to_le_bytes()));
            let signature = key.sign(&message);
            (key.public_key(), message, signature)
        })
        .collect()
}

/// What the apply benchmark measured.
struct Apply {
    blocks: usize,
    txs: usize,
    signatures: usize,
    verify: Duration,
    push: Duration,
    finish: Duration,
    write: Duration,
}

impl Apply {
    fn total(&self) -> Duration {
        self.verify + self.push + self.finish + self.write
    }

    fn tx_per_second(&self) -> f64 {
        self.txs as f64 / self.total().as_secs_f64()
    }
}

fn holder(i: usize) -> String {
    format!("holder-{i:04}")
}

/// The workload: a chain with enrolled holders, the assets they own, and a source of
/// deterministic pseudo-random choices.
struct Workload {
    chain: TestChain,
    /// Current owner (holder index) of each pre-registered asset that transfers move.
    transferable: Vec<(AssetId, usize)>,
    /// Pre-registered assets not pledged yet, with their owner.
    pledgeable: Vec<(AssetId, usize)>,
    next_transfer: usize,
    counter: u64,
    rng: u64,
    /// `valid_until` of the transactions being built.
    valid_until: u64,
}

impl Workload {
    fn random(&mut self, below: usize) -> usize {
        // xorshift64*: deterministic, so every run applies the same transactions.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % below
    }

    fn unique(&mut self, what: &str) -> Digest {
        self.counter += 1;
        Digest::sha256(format!("{what} {}", self.counter).as_bytes())
    }

    fn tx(&mut self, action: Action, signers: &[&str]) -> SignedTx {
        let mut body = self.chain.body(action);
        body.valid_until = self.valid_until;
        let mut tx = SignedTx::unsigned(body);
        for name in signers {
            tx.sign(&test_key(name));
        }
        tx
    }

    fn register(&mut self, owner: usize) -> (SignedTx, AssetId) {
        let content_hash = self.unique("work");
        let name = holder(owner);
        let action = Action::RegisterWork {
            content_hash,
            title: format!("Work {content_hash}"),
            kind: WorkKind::Software,
            authors: vec![name.clone()],
            owner: PartyId(name.clone()),
        };
        (self.tx(action, &[&name]), AssetId::Work { content_hash })
    }

    /// One transaction of the mix, for the block at `height`.
    fn next_tx(&mut self, height: u64) -> SignedTx {
        let roll = self.random(100);
        if roll < 60 {
            let attestor = holder(self.random(HOLDERS));
            let action = Action::AttestEvidence {
                attestor: PartyId(attestor.clone()),
                evidence_hash: self.unique("evidence"),
                kind: EvidenceKind::WebPage,
                case_ref: None,
                related_asset: None,
            };
            self.tx(action, &[&attestor])
        } else if roll < 85 {
            let owner = self.random(HOLDERS);
            self.register(owner).0
        } else if roll < 95 {
            let at = self.next_transfer % self.transferable.len();
            self.next_transfer += 1;
            let (asset, from) = self.transferable[at].clone();
            let to = (from + 1 + self.random(HOLDERS - 1)) % HOLDERS;
            self.transferable[at].1 = to;
            let action = Action::TransferAsset {
                asset,
                to: PartyId(holder(to)),
            };
            self.tx(action, &[&holder(from)])
        } else {
            let (asset, owner) = self.pledgeable.pop().expect("enough pledgeable assets");
            let bank = ["bank-a", "bank-b"][self.random(2)];
            let terms = PledgeTerms {
                assets: vec![asset],
                pledgor: PartyId(holder(owner)),
                pledgee: PartyId::from(bank),
                registrar: PartyId::from("trading-center"),
                secured_amount: Money {
                    minor_units: 100_000_000,
                    currency: "CNY".into(),
                },
                maturity_ms: TEST_GENESIS_TIME_MS + (height + 1_000) * TEST_BLOCK_INTERVAL_MS,
                first_rank: true,
                valuations: Vec::new(),
            };
            let pledgor = holder(owner);
            self.tx(
                Action::RegisterPledge(terms),
                &[&pledgor, bank, "trading-center"],
            )
        }
    }
}

/// Sets up the chain (unmeasured), then applies blocks of the mix and times each phase.
fn apply_benchmark() -> Apply {
    let setup_started = Instant::now();
    let mut chain = TestChain::new(4);
    let enrolments: Vec<SignedTx> = (0..HOLDERS)
        .map(|i| {
            let name = holder(i);
            let action = Action::EnrollRightsHolder {
                registrar: PartyId::from("trading-center"),
                party: PartyId(name.clone()),
                name: format!("Holder {i}"),
                key: test_key(&name).public_key(),
                id_document_hash: Digest::sha256(name.as_bytes()),
            };
            chain.tx(action, &["trading-center", &name])
        })
        .collect();
    let outcomes = chain.commit(enrolments);
    assert!(outcomes.iter().all(Result::is_ok), "enrolment succeeds");

    let mut work = Workload {
        chain,
        transferable: Vec::new(),
        pledgeable: Vec::new(),
        next_transfer: 0,
        counter: 0,
        rng: 0x9e37_79b9_7f4a_7c15,
        valid_until: 0,
    };
    // Enough assets for the transfers (reused round-robin) and the pledges (one each).
    let blocks_max = WARMUP_BLOCKS + MEASURED_BLOCKS_MAX;
    let pledges_max = blocks_max * BLOCK_TXS / 20 * 2;
    for pool in [2_000, pledges_max] {
        let mut txs = Vec::new();
        let mut assets = Vec::new();
        work.valid_until = work.chain.height() + 50;
        for _ in 0..pool {
            let owner = work.random(HOLDERS);
            let (tx, asset) = work.register(owner);
            txs.push(tx);
            assets.push((asset, owner));
        }
        for chunk in txs.chunks(BLOCK_TXS * 2) {
            let outcomes = work.chain.commit(chunk.to_vec());
            assert!(outcomes.iter().all(Result::is_ok), "setup registrations");
        }
        if work.transferable.is_empty() {
            work.transferable = assets;
        } else {
            work.pledgeable = assets;
        }
    }
    println!(
        "setup: {HOLDERS} holders enrolled, {} assets registered, in {:.1} s (not measured)",
        work.transferable.len() + work.pledgeable.len(),
        setup_started.elapsed().as_secs_f64()
    );

    let proposer = work.chain.genesis.validators[0].key;
    let validators = work.chain.genesis.validators.clone();
    let chain_id = work.chain.genesis.chain_id.clone();
    let mut height = work.chain.height();
    let mut parent_header = work
        .chain
        .blocks
        .last()
        .expect("setup blocks")
        .header
        .clone();
    let mut parent_certificate = work.chain.certificates.last().cloned();
    let mut result = Apply {
        blocks: 0,
        txs: 0,
        signatures: 0,
        verify: Duration::ZERO,
        push: Duration::ZERO,
        finish: Duration::ZERO,
        write: Duration::ZERO,
    };
    for block in 0.. {
        let measured = block >= WARMUP_BLOCKS;
        if measured
            && result.blocks >= MEASURED_BLOCKS_MIN
            && (result.total() >= APPLY_TIME || result.blocks >= MEASURED_BLOCKS_MAX)
        {
            break;
        }
        height += 1;
        // Unmeasured: build and sign the block's transactions.
        work.valid_until = height + 50;
        let txs: Vec<SignedTx> = (0..BLOCK_TXS).map(|_| work.next_tx(height)).collect();
        let signatures: usize = txs.iter().map(|tx| tx.signatures.len()).sum();
        let ctx = BlockContext {
            height,
            time_ms: TEST_GENESIS_TIME_MS + height * TEST_BLOCK_INTERVAL_MS,
        };
        let parent = Parent {
            hash: parent_header.hash(),
            certificate: parent_certificate.take(),
        };

        let t0 = Instant::now();
        let verified: Vec<VerifiedTx> = VerifiedTx::verify_many(txs)
            .into_iter()
            .map(|v| v.expect("benchmark transactions verify"))
            .collect();
        let t1 = Instant::now();
        let state = StateTree::new(&work.chain.state_store, Some(height - 1));
        let mut builder = BlockBuilder::new(&state, ctx).expect("block starts");
        for vtx in &verified {
            match builder.push(vtx) {
                Ok(true) => {}
                other => panic!("benchmark transaction not applied: {other:?}"),
            }
        }
        let t2 = Instant::now();
        let executed = builder
            .finish(&state, proposer, parent)
            .expect("block finishes");
        let t3 = Instant::now();
        work.chain.state_store.commit(&executed);
        let t4 = Instant::now();

        if measured {
            result.blocks += 1;
            result.txs += BLOCK_TXS;
            result.signatures += signatures;
            result.verify += t1 - t0;
            result.push += t2 - t1;
            result.finish += t3 - t2;
            result.write += t4 - t3;
        }
        parent_header = executed.block.header;
        parent_certificate = Some(certify(
            &chain_id,
            height,
            parent_header.hash(),
            &validators,
        ));
    }
    result
}
