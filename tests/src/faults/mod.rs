//! The fault harness: a four-validator network of real node processes under a steady load of
//! signed transactions, with faults from a seeded [`mod@schedule`] injected one at a time, and the
//! checks that nothing acknowledged was lost or forked.
//!
//! After every run, [`run`] checks that:
//! - the network commits again within [`RECOVERY_DEADLINE`] of the last fault ending, and every
//!   node catches up to the highest acknowledged height;
//! - every node holds byte-identical blocks up to the lowest head (each block carries its
//!   predecessor's canonical certificate, so identical blocks mean identical certified history);
//! - every transaction a node answered as committed is in those blocks, at the height it was
//!   acknowledged at;
//! - `ipledger-node verify-store` re-executes each node's chain from genesis (hash links,
//!   certificates, state roots);
//! - no node died by itself, and a 2–2 split committed nothing (beyond a block already decided
//!   when the links were cut).
//!
//! Anything else is an anomaly, reported with the seed that reruns the same schedule.
//!
//! A fault that cannot be injected fails the run: a node that cannot be killed or started is an
//! error, and a link fault during which no consensus datagram crossed the faulty links (so the
//! engine's traffic did not go through the proxies) is an anomaly.

pub mod cluster;
pub mod proxy;
pub mod schedule;

use crate::{agent, Net, ORGANISATIONS};
use anyhow::{Context, Result};
use cluster::Cluster;
use ledger_core::block::Block;
use ledger_core::tx::{Action, SignedTx, TxId};
use ledger_core::types::EvidenceKind;
use proxy::LinkFaults;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schedule::{schedule, Fault, FaultKind, Step};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long the network may take to commit again once a fault ends.
pub const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);
/// How long the nodes may take to start and commit the first block.
pub const START_DEADLINE: Duration = Duration::from_secs(120);
/// How long a submission waits for its commit before the load thread moves on.
const SUBMIT_WAIT: Duration = Duration::from_secs(15);
/// The most acknowledged transactions a run keeps (a 60-minute soak stays far below).
const ACKNOWLEDGED_MAX: usize = 2_000_000;
/// Transactions per prefill request: the node's batch limit.
const PREFILL_BATCH: u64 = 256;
/// Prefill requests in flight (one per node, so every node proposes full blocks).
const PREFILL_IN_FLIGHT: u64 = 4;

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Fixes the schedule and the load's choices.
    pub seed: u64,
    /// The fault kinds to draw from.
    pub kinds: Vec<FaultKind>,
    /// About how long the faults go on.
    pub duration: Duration,
    /// Where the network lives (created, must not exist).
    pub dir: PathBuf,
    /// The directory holding `ipledger-node` and `ipledger-genesis`.
    pub bin: PathBuf,
    /// Concurrent submitters.
    pub load_threads: usize,
    /// Every node's `[store] cache_mib`; `None` leaves `ipledger-genesis local`'s default. The
    /// soak sets a small one so that the cache is full within its first ten minutes and any
    /// other growth shows.
    pub store_cache_mib: Option<u32>,
    /// Evidence attestations committed (in batches) before the faults start and the memory
    /// windows open. The soak prefills a ledger larger than the store cache: from an empty
    /// ledger memory rises by design until the store outgrows the cache.
    pub prefill: u64,
}

/// A transaction a node answered as committed.
#[derive(Clone, Debug)]
struct Acknowledged {
    id: TxId,
    height: u64,
    node: usize,
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    /// The run's seed.
    pub seed: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// `kill -9`s, start-up kills included.
    pub kills: u64,
    /// Datagrams dropped, duplicated or held and connections cut by the link proxies.
    pub link_faults_applied: u64,
    /// Datagrams (consensus traffic) the link proxies saw, either way.
    pub datagrams: u64,
    /// Transactions answered as committed.
    pub acknowledged: u64,
    /// Submissions that got no answer of committed (node down, timeout, busy).
    pub unanswered: u64,
    /// The lowest head at the end, up to which every node's blocks were compared.
    pub compared_height: u64,
    /// The longest wait for a new commit after a fault ended.
    pub longest_recovery: Duration,
    /// Each node's peak resident memory since the prefill.
    pub peak_memory: Vec<PeakMemory>,
    /// Transactions committed by the prefill (also counted in `acknowledged`).
    pub prefilled: u64,
    /// How long the run took.
    pub elapsed: Duration,
    /// Everything that broke a guarantee.
    pub anomalies: Vec<String>,
}

/// Runs `options`: starts the network, the load and the faults, then checks everything.
pub fn run(options: &Options) -> Result<Report> {
    let started = Instant::now();
    std::fs::create_dir_all(
        options
            .dir
            .parent()
            .context("the run directory has a parent")?,
    )?;
    let mut cluster = Cluster::create(
        &options.dir,
        &options.bin,
        options.seed,
        options.store_cache_mib,
    )?;
    let steps = schedule(
        options.seed,
        &options.kinds,
        cluster.nodes.len(),
        options.duration,
    );
    let mut report = Report {
        seed: options.seed,
        ..Report::default()
    };
    cluster.start_all()?;
    wait_until("every node commits height 1", START_DEADLINE, || {
        (0..cluster.nodes.len()).all(|i| cluster.height(i).unwrap_or(0) >= 1)
    })?;
    let net = Net::open(&options.dir)?;
    let load = Load::new(cluster.nodes.len());
    if options.prefill > 0 {
        let took = Instant::now();
        load.prefill(&net, options.prefill, options.seed)?;
        report.prefilled = options.prefill;
        // The memory windows measure processes that did not live through the prefill's
        // burst (whose peak would otherwise fill the first window): restart every node.
        cluster.stop_all()?;
        cluster.start_all()?;
        let prefilled_height = load.head.load(Ordering::Relaxed);
        wait_until(
            "every node commits again after the prefill's restart",
            START_DEADLINE,
            || (0..cluster.nodes.len()).all(|i| cluster.height(i).unwrap_or(0) > prefilled_height),
        )?;
        println!(
            "prefill: {} evidence attestations committed, nodes restarted, in {:.1?}",
            options.prefill,
            took.elapsed()
        );
    }
    let windows_open = Instant::now();
    let rss = Mutex::new(RssWindows::new(cluster.nodes.len()));
    let cluster = Mutex::new(cluster);
    std::thread::scope(|scope| -> Result<()> {
        for thread in 0..options.load_threads {
            let (net, load) = (&net, &load);
            let seed = options.seed ^ (thread as u64 + 1);
            scope.spawn(move || load.submit_until_stopped(net, seed, thread));
        }
        scope.spawn(|| {
            while !load.stop.load(Ordering::Relaxed) {
                let cluster = cluster.lock().expect("cluster lock");
                let sample: Vec<Option<u64>> = (0..cluster.nodes.len())
                    .map(|i| cluster.rss_kib(i))
                    .collect();
                drop(cluster);
                rss.lock()
                    .expect("rss lock")
                    .record(windows_open.elapsed(), &sample);
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let outcome = inject(&cluster, &steps, &mut report);
        load.stop.store(true, Ordering::Relaxed);
        outcome
    })?;
    let mut cluster = cluster.into_inner().expect("cluster lock");
    report.acknowledged = load.acknowledged.lock().expect("ack lock").len() as u64;
    report.unanswered = load.unanswered.load(Ordering::Relaxed);
    report
        .anomalies
        .extend(load.anomalies.lock().expect("anomaly lock").drain(..));
    report.link_faults_applied = cluster.link_faults_applied();
    report.datagrams = cluster.datagrams(&cluster.links());
    check_after_faults(&mut cluster, &load, &mut report)?;
    let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
    report.peak_memory = rss.into_inner().expect("rss lock").peaks(&names);
    cluster.shut_down()?;
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Polls `done` every 100 ms until it holds, or fails naming `what` after `deadline`.
fn wait_until(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    while !done() {
        anyhow::ensure!(
            started.elapsed() < deadline,
            "{what}: not within {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(started.elapsed())
}

/// Injects `steps` one after another; records anomalies it sees on the way.
fn inject(cluster: &Mutex<Cluster>, steps: &[Step], report: &mut Report) -> Result<()> {
    let lock = || cluster.lock().expect("cluster lock");
    for (number, step) in steps.iter().enumerate() {
        std::thread::sleep(step.quiet_before);
        for (name, status) in lock().exited_by_themselves() {
            report.anomalies.push(format!(
                "before fault {number}: node {name} exited by itself ({status})"
            ));
        }
        lock().start_all()?;
        *report
            .faults
            .entry(step.fault.kind().to_string())
            .or_default() += 1;
        println!("fault {number}: {:?}", step.fault);
        match step.fault {
            Fault::Crash { node, down } => {
                lock().kill(node)?;
                report.kills += 1;
                std::thread::sleep(down);
                lock().start(node)?;
            }
            Fault::CrashDuringStart { node, after } => {
                lock().kill(node)?;
                lock().start(node)?;
                std::thread::sleep(after);
                lock().kill(node)?;
                report.kills += 2;
                lock().start(node)?;
            }
            Fault::CrashTwo { pair, down } => {
                lock().kill(pair.0)?;
                lock().kill(pair.1)?;
                report.kills += 2;
                report.check_no_progress(&lock, number, "with two of four nodes killed", down);
                lock().start(pair.0)?;
                lock().start(pair.1)?;
            }
            Fault::Isolate { node, span } => {
                let links: Vec<(usize, usize)> = (0..lock().nodes.len())
                    .filter(|&other| other != node)
                    .map(|other| (node, other))
                    .collect();
                let crossed = link_fault(&lock, &links, cut(), span, |_| {})?;
                report.check_link_fault(number, crossed);
            }
            Fault::Split { pair, span } => {
                let count = lock().nodes.len();
                let side = |i: usize| i == pair.0 || i == pair.1;
                let links: Vec<(usize, usize)> = (0..count)
                    .flat_map(|a| (0..count).map(move |b| (a, b)))
                    .filter(|&(a, b)| side(a) && !side(b))
                    .collect();
                let crossed = link_fault(&lock, &links, cut(), span, |span| {
                    report.check_no_progress(&lock, number, "during a 2-2 split", span)
                })?;
                report.check_link_fault(number, crossed);
            }
            Fault::SlowLink {
                a,
                b,
                delay_ms,
                span,
            } => {
                let slow = LinkFaults {
                    delay_ms,
                    ..LinkFaults::default()
                };
                let crossed = link_fault(&lock, &[(a, b)], slow, span, |_| {})?;
                report.check_link_fault(number, crossed);
            }
            Fault::LossyLink {
                loss,
                duplicate,
                reorder,
                span,
            } => {
                let lossy = LinkFaults {
                    loss,
                    duplicate,
                    reorder,
                    ..LinkFaults::default()
                };
                let links = lock().links();
                let crossed = link_fault(&lock, &links, lossy, span, |_| {})?;
                report.check_link_fault(number, crossed);
            }
        }
        let ended = lock().max_height();
        let recovery = wait_until(
            &format!(
                "after fault {number} ({:?}) the network commits again",
                step.fault
            ),
            RECOVERY_DEADLINE,
            || lock().max_height() > ended,
        );
        match recovery {
            Ok(took) => {
                println!("fault {number}: the network committed again after {took:.1?}");
                report.longest_recovery = report.longest_recovery.max(took)
            }
            Err(error) => report.anomalies.push(format!("{error:#}")),
        }
    }
    Ok(())
}

/// Sets `faults` on `links` (both directions of each), runs `during` (or sleeps) for `span`,
/// heals them; returns how many datagrams crossed those links meanwhile.
fn link_fault<'a>(
    lock: &impl Fn() -> std::sync::MutexGuard<'a, Cluster>,
    links: &[(usize, usize)],
    faults: LinkFaults,
    span: Duration,
    during: impl FnOnce(Duration),
) -> Result<u64> {
    let before = lock().datagrams(links);
    for &(a, b) in links {
        lock().set_link(a, b, faults)?;
    }
    let started = Instant::now();
    during(span);
    std::thread::sleep(span.saturating_sub(started.elapsed()));
    let crossed = lock().datagrams(links) - before;
    for &(a, b) in links {
        lock().set_link(a, b, LinkFaults::default())?;
    }
    Ok(crossed)
}

impl Report {
    /// Waits out `span` of a fault that leaves no quorum, and records an anomaly if the network
    /// committed meanwhile: more than one block, since a block whose precommits were already on
    /// their way when the fault began may still commit in its first second.
    fn check_no_progress<'a>(
        &mut self,
        lock: &impl Fn() -> std::sync::MutexGuard<'a, Cluster>,
        number: usize,
        what: &str,
        span: Duration,
    ) {
        std::thread::sleep(Duration::from_secs(1).min(span));
        let at_start = lock().max_height();
        std::thread::sleep(span.saturating_sub(Duration::from_secs(1)));
        let at_end = lock().max_height();
        if at_end > at_start + 1 {
            self.anomalies.push(format!(
                "fault {number}: {what} the network went from height {at_start} to {at_end}"
            ));
        }
    }

    /// A link fault during which no consensus datagram reached the faulty links did nothing to
    /// consensus: it was not injected, and the run must not pass as if it had been.
    fn check_link_fault(&mut self, number: usize, datagrams: u64) {
        if datagrams == 0 {
            self.anomalies.push(format!(
                "fault {number} was not injected: no consensus datagram crossed its links"
            ));
        }
    }
}

fn cut() -> LinkFaults {
    LinkFaults {
        cut: true,
        ..LinkFaults::default()
    }
}

/// The steady load: evidence attestations by the organisations, each with a fresh hash.
struct Load {
    stop: AtomicBool,
    head: AtomicU64,
    acknowledged: Mutex<Vec<Acknowledged>>,
    unanswered: AtomicU64,
    anomalies: Mutex<Vec<String>>,
    nodes: usize,
}

impl Load {
    fn new(nodes: usize) -> Load {
        Load {
            stop: AtomicBool::new(false),
            head: AtomicU64::new(1),
            acknowledged: Mutex::new(Vec::new()),
            unanswered: AtomicU64::new(0),
            anomalies: Mutex::new(Vec::new()),
            nodes,
        }
    }

    /// The organisations that attest evidence in the load (every one but the regulator).
    fn attestors() -> Vec<&'static str> {
        ORGANISATIONS
            .into_iter()
            .filter(|org| *org != "regulator")
            .collect()
    }

    /// An evidence attestation by `attestor` of a hash no other transaction of the run uses.
    fn attestation(net: &Net, attestor: &str, label: &str, head: u64) -> Result<SignedTx> {
        let action = Action::AttestEvidence {
            attestor: attestor.into(),
            evidence_hash: crate::sha256(label.as_bytes()),
            kind: EvidenceKind::Document,
            case_ref: None,
            related_asset: None,
        };
        net.tx(action, &[attestor], head)
    }

    /// Records a transaction `node` answered as committed at `height`.
    fn acknowledge(&self, id: TxId, height: u64, node: usize) {
        self.head.fetch_max(height, Ordering::Relaxed);
        let mut acknowledged = self.acknowledged.lock().expect("ack lock");
        if acknowledged.len() < ACKNOWLEDGED_MAX {
            acknowledged.push(Acknowledged { id, height, node });
        }
    }

    /// Commits `count` evidence attestations through the batch route, [`PREFILL_IN_FLIGHT`]
    /// batches at a time, each acknowledged like the steady load's transactions. Any refusal
    /// or failure ends the run: nothing is faulty yet.
    fn prefill(&self, net: &Net, count: u64, seed: u64) -> Result<()> {
        let batches = count.div_ceil(PREFILL_BATCH);
        std::thread::scope(|scope| {
            let lanes: Vec<_> = (0..PREFILL_IN_FLIGHT)
                .map(|lane| {
                    scope.spawn(move || -> Result<()> {
                        let agent = agent();
                        let mut batch = lane;
                        while batch < batches {
                            self.prefill_batch(net, &agent, seed, batch, count)?;
                            batch += PREFILL_IN_FLIGHT;
                        }
                        Ok(())
                    })
                })
                .collect();
            lanes
                .into_iter()
                .try_for_each(|lane| lane.join().expect("a prefill lane panicked"))
        })
    }

    /// Sends the prefill's batch number `batch` (of `count` transactions in all) and waits
    /// for all of it to commit.
    fn prefill_batch(
        &self,
        net: &Net,
        agent: &ureq::Agent,
        seed: u64,
        batch: u64,
        count: u64,
    ) -> Result<()> {
        let attestors = Self::attestors();
        let node = (batch % self.nodes as u64) as usize;
        let head = self.head.load(Ordering::Relaxed);
        let first = batch * PREFILL_BATCH;
        let txs = (first..(first + PREFILL_BATCH).min(count))
            .map(|k| {
                let attestor = attestors[(k % attestors.len() as u64) as usize];
                Self::attestation(net, attestor, &format!("prefill {seed} {k}"), head)
            })
            .collect::<Result<Vec<_>>>()?;
        let bodies = txs
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        let (answers, _resent) =
            crate::post_batch(agent, &net.nodes[node].url, &bodies).context("prefill: a batch")?;
        for (tx, (status, answer)) in txs.iter().zip(answers) {
            let height = answer["height"]
                .as_u64()
                .filter(|_| answer["status"] == "committed")
                .with_context(|| {
                    format!("prefill: {} was not committed: {status} {answer}", tx.id())
                })?;
            self.acknowledge(tx.id(), height, node);
        }
        Ok(())
    }

    /// Submits one transaction at a time to a random node until stopped, waiting for each.
    fn submit_until_stopped(&self, net: &Net, seed: u64, thread: usize) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let agent = agent();
        let attestors = Self::attestors();
        let mut count = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            count += 1;
            let node = (rng.next_u64() % self.nodes as u64) as usize;
            let attestor = attestors[(rng.next_u64() % attestors.len() as u64) as usize];
            let head = self.head.load(Ordering::Relaxed);
            let label = format!("fault run {seed} {thread} {count}");
            let tx = match Self::attestation(net, attestor, &label, head) {
                Ok(tx) => tx,
                Err(error) => {
                    self.anomaly(format!("building a transaction: {error:#}"));
                    return;
                }
            };
            let url = format!(
                "{}/v1/transactions?wait=true&timeout_ms={}",
                net.nodes[node].url,
                SUBMIT_WAIT.as_millis()
            );
            let answer = serde_json::to_string(&tx)
                .map_err(anyhow::Error::from)
                .and_then(|body| {
                    let mut response = agent
                        .post(&url)
                        .header("content-type", "application/json")
                        .send(body.as_str())?;
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string()?;
                    Ok((status, serde_json::from_str::<serde_json::Value>(&text)?))
                });
            match answer {
                Ok((200, answer)) if answer["status"] == "committed" => {
                    let Some(height) = answer["height"].as_u64() else {
                        self.anomaly(format!("committed without a height: {answer}"));
                        continue;
                    };
                    self.acknowledge(tx.id(), height, node);
                }
                Ok((422, answer)) => self.anomaly(format!(
                    "node {node} refused a valid fresh transaction {}: {answer}",
                    tx.id()
                )),
                // Down, busy, timed out or still pending: not acknowledged, nothing to check.
                Ok(_) | Err(_) => {
                    self.unanswered.fetch_add(1, Ordering::Relaxed);
                    // A node that is down answers at once; do not spin on it.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn anomaly(&self, what: String) {
        self.anomalies.lock().expect("anomaly lock").push(what);
    }
}

/// Heals everything, restarts every node, and checks the run's guarantees.
fn check_after_faults(cluster: &mut Cluster, load: &Load, report: &mut Report) -> Result<()> {
    for (name, status) in cluster.exited_by_themselves() {
        report
            .anomalies
            .push(format!("node {name} exited by itself ({status})"));
    }
    cluster.set_all_links(LinkFaults::default());
    cluster.start_all()?;
    let acknowledged = std::mem::take(&mut *load.acknowledged.lock().expect("ack lock"));
    let highest_acknowledged = acknowledged.iter().map(|a| a.height).max().unwrap_or(0);
    let at_heal = cluster.max_height();
    let target = highest_acknowledged.max(at_heal) + 1;
    let count = cluster.nodes.len();
    if let Err(error) = wait_until(
        &format!("every node reaches height {target} after the faults"),
        RECOVERY_DEADLINE,
        || (0..count).all(|i| cluster.height(i).unwrap_or(0) >= target),
    ) {
        report.anomalies.push(format!("{error:#}"));
        return Ok(());
    }
    let lowest = (0..count)
        .filter_map(|i| cluster.height(i))
        .min()
        .unwrap_or(0);
    report.compared_height = lowest;
    let in_blocks = compare_blocks(cluster, lowest, report)?;
    for ack in &acknowledged {
        match in_blocks.get(&ack.id) {
            Some(&height) if height == ack.height => {}
            Some(&height) => report.anomalies.push(format!(
                "{} was acknowledged by {} at height {} but is at height {height}",
                ack.id, cluster.nodes[ack.node].name, ack.height
            )),
            None => report.anomalies.push(format!(
                "{} was acknowledged by {} at height {} but no node holds it",
                ack.id, cluster.nodes[ack.node].name, ack.height
            )),
        }
    }
    cluster.stop_all()?;
    for i in 0..count {
        if let Err(error) = cluster.verify_store(i) {
            report.anomalies.push(format!("{error:#}"));
        }
    }
    Ok(())
}

/// Checks that every node holds the same bytes for blocks `1..=lowest`; returns the height of
/// every transaction in them.
fn compare_blocks(
    cluster: &Cluster,
    lowest: u64,
    report: &mut Report,
) -> Result<HashMap<TxId, u64>> {
    let agent = agent();
    let mut heights = HashMap::new();
    for height in 1..=lowest {
        let mut first: Option<(usize, Vec<u8>)> = None;
        for (i, node) in cluster.nodes.iter().enumerate() {
            let url = format!("{}/v1/blocks/{height}", node.url);
            let (status, answer) = crate::get_json(&agent, &url)?;
            anyhow::ensure!(status == 200, "GET {url} answered {status}: {answer}");
            let block: Block = serde_json::from_value(answer["block"].clone())
                .with_context(|| format!("the block in the answer to GET {url}"))?;
            let bytes = block.encode();
            match &first {
                None => {
                    for tx in &block.txs {
                        heights.insert(tx.id(), height);
                    }
                    first = Some((i, bytes));
                }
                Some((j, expected)) if *expected != bytes => report.anomalies.push(format!(
                    "block {height} differs between {} and {}",
                    cluster.nodes[*j].name, node.name
                )),
                Some(_) => {}
            }
        }
    }
    Ok(heights)
}

/// A node's peak resident memory (KiB) since the prefill.
#[derive(Debug)]
pub struct PeakMemory {
    pub node: String,
    /// In the last ten minutes.
    pub last_kib: u64,
    /// In each ten minutes, in order (the last may be shorter).
    pub windows_kib: Vec<u64>,
}

impl PeakMemory {
    /// In the first ten minutes.
    pub fn first_kib(&self) -> u64 {
        self.windows_kib.first().copied().unwrap_or(0)
    }
}

/// Each node's resident memory, sampled once a second, reported as the peak of each ten
/// minutes: the soak's rule compares the first window with the last, and the windows between
/// show whether memory levels off or keeps growing.
struct RssWindows {
    samples: Vec<Vec<(Duration, u64)>>,
}

impl RssWindows {
    const WINDOW: Duration = Duration::from_secs(600);

    fn new(nodes: usize) -> RssWindows {
        RssWindows {
            samples: vec![Vec::new(); nodes],
        }
    }

    fn record(&mut self, at: Duration, sample: &[Option<u64>]) {
        for (samples, kib) in self.samples.iter_mut().zip(sample) {
            if let Some(kib) = kib {
                // One sample a second for a day is 86,400 entries a node: bounded by the run.
                samples.push((at, *kib));
            }
        }
    }

    fn peaks(&self, names: &[String]) -> Vec<PeakMemory> {
        names
            .iter()
            .zip(&self.samples)
            .map(|(name, samples)| {
                let end = samples.last().map_or(Duration::ZERO, |(at, _)| *at);
                let mut windows_kib: Vec<u64> = Vec::new();
                let mut last_kib = 0;
                for (at, kib) in samples {
                    let window = (at.as_secs() / Self::WINDOW.as_secs()) as usize;
                    if windows_kib.len() <= window {
                        windows_kib.resize(window + 1, 0);
                    }
                    windows_kib[window] = windows_kib[window].max(*kib);
                    if *at + Self::WINDOW >= end {
                        last_kib = last_kib.max(*kib);
                    }
                }
                PeakMemory {
                    node: name.clone(),
                    last_kib,
                    windows_kib,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_peaks_are_kept_per_ten_minutes_and_for_the_last_ten() {
        let mut windows = RssWindows::new(2);
        let minute = |m: u64| Duration::from_secs(60 * m);
        let samples = [
            (0, 10, Some(5)),
            (9, 30, None),
            (10, 20, Some(7)),
            (25, 15, Some(9)),
            (31, 12, Some(8)),
        ];
        for (at, a, b) in samples {
            windows.record(minute(at), &[Some(a), b]);
        }
        let peaks = windows.peaks(&["a".into(), "b".into()]);
        assert_eq!(peaks[0].windows_kib, vec![30, 20, 15, 12]);
        assert_eq!(peaks[0].first_kib(), 30);
        assert_eq!(peaks[0].last_kib, 15, "minutes 21..=31");
        assert_eq!(peaks[1].windows_kib, vec![5, 7, 9, 8]);
        assert_eq!(peaks[1].last_kib, 9);
    }
}
