//! Prunes replaced state-tree nodes and merges staged index rows behind the commits, on a thread
//! of its own.
//!
//! Deleting a batch of [`STATE_PRUNE_BATCH_VERSIONS`] versions' stale nodes takes several times
//! as long as committing a block (it rewrites every page the batch's nodes sit in). Inside the
//! commit it held back one block in sixteen, and every transaction in it: that was the tail of
//! the submit-to-commit latency (docs/PERFORMANCE.md). Here the commit is answered first, and the
//! batch is deleted in steps of at most [`PRUNE_STEP_NODES_MAX`] nodes, each in its own write
//! transaction ([`Store::prune_step`]), while consensus moves on to the next height; a commit
//! waits only for the step running when it comes (redb has one writer), not the whole batch.
//!
//! Validators prune at different heights: each lags the head by its own phase, spread over the
//! batch by its place among the admitted validators. Four validators pruning the same batch at
//! the same height slowed that height for all of them (on a shared machine, they also competed
//! for its cores); staggered, at most about one validator in each height is busy pruning, and
//! the others still make a quorum on time.
//!
//! The same thread merges the rows each commit staged by height into the hash-keyed indexes, a
//! batch of [`MERGE_BATCH_HEIGHTS`] heights at a time, in steps ([`Store::merge_step`]; why, in
//! the store's `staging` module), with the same lag.
//!
//! Neither decides anything about the ledger: every validator prunes and merges on its own
//! schedule, and a crash or a failed step leaves a store that is merely less pruned or less
//! merged, with reads unchanged, which the next batch (or the next start) catches up.

use crate::store::{
    Store, StoreError, MERGE_BATCH_HEIGHTS, MERGE_STEP_ROWS_MAX, PRUNE_STEP_NODES_MAX,
    STATE_PRUNE_BATCH_VERSIONS,
};
use crate::supervision::Supervisor;
use ledger_core::crypto::PublicKey;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;
use tracing::{error, info};

/// The pruning thread of a node. Dropping it stops the thread between steps and waits for it,
/// so no transaction of it outlives its owner's hold on the store.
pub struct StatePruner {
    signal: Arc<PruneSignal>,
    thread: Option<JoinHandle<()>>,
}

/// What wakes the pruning thread.
struct PruneSignal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

/// Why the pruning thread should wake, under [`PruneSignal::state`].
struct SignalState {
    /// A block was committed since the thread last looked for due batches.
    committed: bool,
    /// The owner is stopping: end after the current step.
    stopping: bool,
}

/// Tells the pruning thread that a block was committed (held by the consensus application).
#[derive(Clone)]
pub struct PruneTrigger(Arc<PruneSignal>);

impl PruneTrigger {
    /// A block was committed: prune whatever batch its height makes due. Never blocks on the
    /// pruning itself.
    pub fn committed(&self) {
        self.0.state.lock().expect("prune signal lock").committed = true;
        self.0.changed.notify_one();
    }
}

impl StatePruner {
    /// Starts the thread; it first prunes whatever is already due (a store the last run left
    /// behind), then a batch whenever a commit makes one due. It prunes a batch `phase` heights
    /// later than the head allows (see [`pruning_phase`]); `phase` is below
    /// [`STATE_PRUNE_BATCH_VERSIONS`]. A panic in the thread (a broken invariant) fails the node
    /// through `supervisor`.
    pub fn start(
        store: Arc<Store>,
        phase: u64,
        supervisor: Supervisor,
    ) -> std::io::Result<StatePruner> {
        assert!(phase < STATE_PRUNE_BATCH_VERSIONS, "pruning phase {phase}");
        let signal = Arc::new(PruneSignal {
            state: Mutex::new(SignalState {
                committed: true,
                stopping: false,
            }),
            changed: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("state-pruner".into())
            .spawn({
                let signal = signal.clone();
                move || {
                    let pruning = AssertUnwindSafe(|| prune_until_stopped(&store, phase, &signal));
                    if let Err(panic) = std::panic::catch_unwind(pruning) {
                        supervisor.panicked("state pruner", panic);
                    }
                }
            })?;
        Ok(StatePruner {
            signal,
            thread: Some(thread),
        })
    }

    /// The handle that wakes this pruner after each commit.
    pub fn trigger(&self) -> PruneTrigger {
        PruneTrigger(self.signal.clone())
    }
}

impl Drop for StatePruner {
    fn drop(&mut self) {
        self.signal
            .state
            .lock()
            .expect("prune signal lock")
            .stopping = true;
        self.signal.changed.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread catches its own panics and reports them to its supervisor.
            let _ = thread.join();
        }
    }
}

/// How many heights a node lags the head before pruning a batch: validator `i` of the `n` keys
/// admitted at the head (in key order) gets `i * STATE_PRUNE_BATCH_VERSIONS / n`, so the
/// validators' batches are spread evenly over the heights; a node that is not a validator gets 0.
pub fn pruning_phase(admitted: &BTreeSet<PublicKey>, own: &PublicKey) -> u64 {
    let Some(index) = admitted.iter().position(|key| key == own) else {
        return 0;
    };
    let phase = index as u64 * STATE_PRUNE_BATCH_VERSIONS / admitted.len() as u64;
    assert!(phase < STATE_PRUNE_BATCH_VERSIONS);
    phase
}

/// The thread: waits for a commit, prunes every batch due and merges every staged batch due,
/// one step at a time, and ends when its owner stops. A failed step is reported and tried again
/// after the next commit; the commit path reports a store that cannot be written at all, and
/// stops the node.
fn prune_until_stopped(store: &Store, phase: u64, signal: &PruneSignal) {
    loop {
        {
            let mut state = signal.state.lock().expect("prune signal lock");
            while !state.committed && !state.stopping {
                state = signal.changed.wait(state).expect("prune signal lock");
            }
            if state.stopping {
                return;
            }
            state.committed = false;
        }
        let pruned = run_steps(
            signal,
            "pruning replaced state-tree nodes",
            || store.prune_step(phase, PRUNE_STEP_NODES_MAX),
            |step| (step.nodes, step.batch_done.then_some(step.batch_through)),
            |through, nodes, ms| {
                info!(
                    through,
                    versions = STATE_PRUNE_BATCH_VERSIONS,
                    nodes,
                    ms,
                    "pruned replaced state-tree nodes"
                )
            },
        );
        if pruned == Steps::Stopping {
            return;
        }
        let merged = run_steps(
            signal,
            "merging staged index rows",
            || store.merge_step(phase, MERGE_STEP_ROWS_MAX),
            |step| (step.rows, step.batch_done.then_some(step.batch_through)),
            |through, rows, ms| {
                info!(
                    through,
                    heights = MERGE_BATCH_HEIGHTS,
                    rows,
                    ms,
                    "merged staged index rows"
                )
            },
        );
        if merged == Steps::Stopping {
            return;
        }
    }
}

/// How [`run_steps`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Steps {
    /// Nothing more is due, or a step failed (reported; tried again after the next commit).
    Done,
    /// The owner is stopping.
    Stopping,
}

/// Runs `step` until nothing is due, a step fails or the owner stops. `measure` reads a step's
/// work and, when it finished a batch, the batch's last height; each finished batch is logged
/// once by `log_batch(through, work, ms)`, with its steps' work and time summed.
fn run_steps<S>(
    signal: &PruneSignal,
    what: &str,
    mut step: impl FnMut() -> Result<Option<S>, StoreError>,
    measure: impl Fn(&S) -> (u64, Option<u64>),
    log_batch: impl Fn(u64, u64, u64),
) -> Steps {
    let mut batch_work = 0;
    let mut batch_started = Instant::now();
    loop {
        match step() {
            Ok(Some(done)) => {
                let (work, finished) = measure(&done);
                batch_work += work;
                if let Some(through) = finished {
                    let ms = crate::service::duration_ms(batch_started.elapsed());
                    log_batch(through, batch_work, ms);
                    batch_work = 0;
                    batch_started = Instant::now();
                }
            }
            Ok(None) => return Steps::Done,
            Err(problem) => {
                error!(error = %problem, "{what} failed; will try again after the next commit");
                return Steps::Done;
            }
        }
        if signal.state.lock().expect("prune signal lock").stopping {
            return Steps::Stopping;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::crypto::SigningKey;

    fn keys(count: u8) -> Vec<PublicKey> {
        (0..count)
            .map(|seed| SigningKey::from_seed([seed; 32]).public_key())
            .collect()
    }

    #[test]
    fn phases_spread_the_validators_over_the_batch() {
        let four = keys(4);
        let admitted: BTreeSet<PublicKey> = four.iter().copied().collect();
        let mut phases: Vec<u64> = four
            .iter()
            .map(|key| pruning_phase(&admitted, key))
            .collect();
        phases.sort_unstable();
        assert_eq!(phases, [0, 4, 8, 12]);
        let outsider = keys(5)[4];
        assert_eq!(pruning_phase(&admitted, &outsider), 0);
        // More validators than versions in a batch: still every phase below the batch.
        let many: BTreeSet<PublicKey> = keys(40).into_iter().collect();
        for key in &many {
            assert!(pruning_phase(&many, key) < STATE_PRUNE_BATCH_VERSIONS);
        }
    }
}
