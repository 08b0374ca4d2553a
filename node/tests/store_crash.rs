//! Commits are atomic and durable: a writer killed with SIGKILL in the middle of committing
//! blocks (and of pruning behind them) loses nothing it acknowledged, and the store it leaves
//! opens and verifies.
//!
//! The test re-runs its own binary as a child (selected by [`CHILD_STORE_ENV`]) that commits
//! blocks in a loop and prints each height once `commit_block` has returned; the parent kills it
//! after a number of heights, reopens the store, and checks every printed height.

mod store_common;
use ipledger_node::pruner::StatePruner;
use ipledger_node::store::Store;
use ipledger_node::supervision::Supervisor;
use ledger_core::testkit::TestChain;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store_common::*;

/// Set in the child: the store file to commit to.
const CHILD_STORE_ENV: &str = "IPLEDGER_STORE_CRASH_CHILD";
/// The most blocks a child commits if nobody kills it.
const CHILD_BLOCKS_MAX: u64 = 5_000;
/// Each round: how many acknowledged heights the parent waits for, then how long it waits
/// before killing the child, so that kills land in different phases (executing the next block,
/// writing it, fsyncing it, printing).
const ROUNDS: [(usize, Duration); 8] = [
    (7, Duration::ZERO),
    (19, Duration::from_micros(300)),
    (3, Duration::from_millis(1)),
    (11, Duration::from_micros(2_500)),
    (5, Duration::from_millis(4)),
    (13, Duration::from_micros(6_500)),
    (2, Duration::from_millis(9)),
    (17, Duration::from_micros(700)),
];
/// How long a round may take before the test gives up.
const ROUND_TIMEOUT: Duration = Duration::from_secs(120);
/// What the child prints after each durable commit.
const ACK: &str = "committed height ";

/// The deterministic chain the child commits: block h holds h % 3 + 1 attestations. Any process
/// building it gets the same blocks, so a child resumes where the last one was killed.
fn extend(chain: &mut TestChain) {
    let height = chain.height() + 1;
    let txs = (0..height % 3 + 1)
        .map(|n| attest(chain, format!("{height}/{n}").as_bytes()))
        .collect();
    assert!(chain.commit(txs).iter().all(Result::is_ok));
}

fn child(path: &Path) {
    let store = Arc::new(Store::open(path).expect("child opens the store"));
    let mut chain = TestChain::new(4);
    store.init_genesis(&chain.genesis).expect("genesis");
    let head = store.head_height().unwrap();
    while chain.height() < head {
        extend(&mut chain);
    }
    assert_eq!(
        store.block(head).unwrap().map(|b| b.header.hash()),
        chain.blocks.last().map(|b| b.header.hash()),
        "the child rebuilt the chain the store holds"
    );
    // Pruning runs behind the commits as in a node, so kills land in its transactions too. A
    // panic in it ends the child, which the parent sees as a death other than its SIGKILL.
    let supervisor = Supervisor::new(|| std::process::exit(3));
    let pruner = StatePruner::start(store.clone(), 0, supervisor).expect("pruning thread");
    let prune = pruner.trigger();
    for _ in 0..CHILD_BLOCKS_MAX {
        extend(&mut chain);
        let height = chain.height();
        commit_height(&store, &chain, height);
        prune.committed();
        println!("{ACK}{height}");
    }
}

#[test]
fn a_writer_killed_mid_commit_keeps_every_acknowledged_block() {
    if let Ok(path) = std::env::var(CHILD_STORE_ENV) {
        child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    let mut acknowledged: Vec<u64> = Vec::new();
    let mut landed_unacknowledged = 0;
    let mut pruned_through = 0;
    for (round, (kill_after, delay)) in ROUNDS.iter().enumerate() {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_writer_killed_mid_commit_keeps_every_acknowledged_block",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_STORE_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("child starts");
        let stdout = child.stdout.take().unwrap();
        let started = Instant::now();
        let mut this_round = Vec::new();
        // Kept open until the child is dead: closing it would kill the child with EPIPE at its
        // next acknowledgement instead of SIGKILL at a random point.
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            // The test harness prints its own text before the first line of output.
            if let Some(at) = line.find(ACK) {
                this_round.push(line[at + ACK.len()..].trim().parse::<u64>().unwrap());
                if this_round.len() >= *kill_after {
                    break;
                }
            }
            assert!(started.elapsed() < ROUND_TIMEOUT, "child too slow");
        }
        // SIGKILL, while the child is executing or committing the next block.
        std::thread::sleep(*delay);
        child.kill().expect("kill the child");
        let status = child.wait().unwrap();
        // Heights the child acknowledged while the parent slept are still in the pipe.
        let drained = this_round.len();
        for line in lines {
            let line = line.unwrap();
            if let Some(at) = line.find(ACK) {
                this_round.push(line[at + ACK.len()..].trim().parse::<u64>().unwrap());
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(
                status.signal(),
                Some(9),
                "the child died of SIGKILL: {status:?}"
            );
        }
        assert!(!status.success(), "the child was killed, not finished");
        assert_eq!(
            drained, *kill_after,
            "the child acknowledged blocks before it was killed"
        );
        acknowledged.extend(&this_round);

        let started = Instant::now();
        let store = Store::open(&path).expect("the store opens after SIGKILL");
        let opened = started.elapsed();
        let head = store.head_height().unwrap();
        let last = *acknowledged.last().unwrap();
        assert!(
            head == last || head == last + 1,
            "head {head}: acknowledged up to {last}; at most the block being committed may \
             have landed after its last acknowledgement"
        );
        landed_unacknowledged += usize::from(head == last + 1);
        for &height in &acknowledged {
            assert!(
                store.block(height).unwrap().is_some(),
                "block {height} lost"
            );
            assert!(store.certificate(height).unwrap().is_some());
        }
        let started = Instant::now();
        let report = store
            .verify_chain()
            .expect("the store verifies after SIGKILL");
        eprintln!(
            "round {round}: killed {delay:?} after {kill_after} acknowledgements read, {} in \
             all (last {last}), \
             head {head}, pruned through {}, open with integrity check {opened:?}, \
             verify_chain {:?} ({} blocks, {} txs)",
            this_round.len(),
            store.pruned_through().unwrap(),
            started.elapsed(),
            report.heights_checked,
            report.transactions
        );
        assert_eq!(report.heights_checked, head);
        pruned_through = store.pruned_through().unwrap();
    }
    assert!(
        pruned_through > 0,
        "the children's pruning threads pruned something"
    );
    eprintln!(
        "{landed_unacknowledged} of {} kills left a committed block that was not yet acknowledged",
        ROUNDS.len()
    );
    let mut sorted = acknowledged.clone();
    sorted.dedup();
    assert_eq!(sorted, acknowledged, "no height was acknowledged twice");
    assert_eq!(acknowledged[0], 1, "the first acknowledgement was read");
}

/// The node binary, killed with SIGKILL while a client submits transactions and waits for their
/// commit: after each kill the store opens and verifies, the engine's write-ahead log passes the
/// start check, every transaction the node acknowledged as committed is there at the height it
/// named, and the restarted node goes on committing.
#[test]
fn a_node_killed_with_sigkill_keeps_every_transaction_it_acknowledged() {
    use ipledger_genesis::KeyFile;
    use ipledger_node::runner::{check_engine_wal, engine_wal_path};
    use ledger_core::crypto::Digest;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use store_common::process::*;

    /// Each round: how many acknowledgements to wait for, then how long before the kill.
    const NODE_ROUNDS: [(usize, Duration); 4] = [
        (2, Duration::ZERO),
        (3, Duration::from_millis(3)),
        (2, Duration::from_millis(40)),
        (3, Duration::from_millis(400)),
    ];

    let dir = tempfile::tempdir().expect("temporary directory");
    let (local, configs) = local_network(dir.path(), 1);
    let config_path = &local.nodes[0].config_path;
    let config = &configs[0];
    let genesis = config.load_genesis().expect("genesis");
    let court_path = local
        .organisations
        .iter()
        .find(|org| org.party.0 == "court")
        .expect("a court")
        .key_path
        .clone();
    let data = config.data_dir();
    let logs = dir.path().join("logs");
    let acknowledged: Arc<Mutex<Vec<(Digest, u64)>>> = Arc::default();
    for (round, (acks, delay)) in NODE_ROUNDS.iter().enumerate() {
        let mut node = NodeProcess::start(config_path, config, &logs, &format!("round-{round}"));
        node.wait_for_height(1);
        let stop = Arc::new(AtomicBool::new(false));
        let before = acknowledged.lock().unwrap().len();
        let client = {
            let (stop, acknowledged, genesis) =
                (stop.clone(), acknowledged.clone(), genesis.clone());
            let court = KeyFile::read(&court_path).expect("court key");
            let address = node.http;
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let Ok((200, status)) = http(address, "GET", "/v1/status", None, HTTP_TIMEOUT)
                    else {
                        return;
                    };
                    let valid_until = status["height"].as_u64().unwrap() + 1_000;
                    let what = format!("round {round} tx {n}");
                    let tx = court_attestation(&genesis, &court, &what, valid_until);
                    let body = serde_json::to_vec(&tx).unwrap();
                    let path = "/v1/transactions?wait=true&timeout_ms=20000";
                    match http(address, "POST", path, Some(&body), HTTP_TIMEOUT) {
                        Ok((200, answer)) => {
                            let height = answer["height"].as_u64().expect("committed height");
                            acknowledged.lock().unwrap().push((tx.id(), height));
                        }
                        // Killed while waiting: not acknowledged.
                        _ => return,
                    }
                }
            })
        };
        let started = Instant::now();
        while acknowledged.lock().unwrap().len() < before + acks {
            assert!(
                started.elapsed() < ROUND_TIMEOUT,
                "no acknowledgements:\n{}",
                node.log_tail()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(*delay);
        let status = node.kill();
        stop.store(true, Ordering::Relaxed);
        client.join().expect("client thread");
        assert!(!status.success(), "killed");

        let store = Store::open(&data.join("ledger.redb")).expect("the store opens after SIGKILL");
        let head = store.head_height().unwrap();
        let wal = check_engine_wal(&engine_wal_path(&data), head)
            .expect("the log a SIGKILL leaves passes the start check");
        for (id, height) in acknowledged.lock().unwrap().iter() {
            assert_eq!(
                store.tx_location(id).unwrap().map(|l| l.height),
                Some(*height),
                "transaction {id}, acknowledged at height {height}, lost"
            );
        }
        let report = store
            .verify_chain()
            .expect("the store verifies after SIGKILL");
        let in_all = acknowledged.lock().unwrap().len();
        eprintln!(
            "round {round}: killed {delay:?} after {} acknowledgements ({in_all} in all), head \
             {head}, log {wal:?}, {report:?}",
            in_all - before,
        );
        store.close().expect("closes");
    }
    let mut node = NodeProcess::start(config_path, config, &logs, "after");
    let head = node.wait_for_height(1);
    node.wait_for_height(head + 2);
    assert!(node.terminate().success(), "{}", node.stderr());
}
