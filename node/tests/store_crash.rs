//! Commits are atomic and durable: a writer killed with SIGKILL in the middle of committing
//! blocks loses nothing it acknowledged, and the store it leaves opens and verifies.
//!
//! The test re-runs its own binary as a child (selected by [`CHILD_STORE_ENV`]) that commits
//! blocks in a loop and prints each height once `commit_block` has returned; the parent kills it
//! after a number of heights, reopens the store, and checks every printed height.

mod store_common;
use ipledger_node::store::Store;
use ledger_core::testkit::TestChain;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
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
    let store = Store::open(path).expect("child opens the store");
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
    for _ in 0..CHILD_BLOCKS_MAX {
        extend(&mut chain);
        let height = chain.height();
        commit_height(&store, &chain, height);
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
             head {head}, open with integrity check {opened:?}, verify_chain {:?} ({} blocks, \
             {} txs)",
            this_round.len(),
            started.elapsed(),
            report.heights_checked,
            report.transactions
        );
        assert_eq!(report.heights_checked, head);
    }
    eprintln!(
        "{landed_unacknowledged} of {} kills left a committed block that was not yet acknowledged",
        ROUNDS.len()
    );
    let mut sorted = acknowledged.clone();
    sorted.dedup();
    assert_eq!(sorted, acknowledged, "no height was acknowledged twice");
    assert_eq!(acknowledged[0], 1, "the first acknowledgement was read");
}
