//! Executing a proposed block while its parts stream in.
//!
//! A proposal arrives as an `Init` part, chunks of the block's canonical bytes, and the
//! proposer's closing signature. For a proposal at the next height, the application feeds the
//! chunks, in order, to a `BlockDecoder`; each decoded transaction has its signatures checked
//! (or reused from the mempool) and goes to a worker thread that applies it with ledger-core's
//! `BlockExecution` on a snapshot of the committed state. When the last part is in, the worker
//! computes the state root and the application compares the executed block's bytes with the
//! streamed ones.
//!
//! This is only a head start, never a second rule: if anything goes wrong on the way (a part
//! that does not decode, a bad signature, a refused transaction, a head that moved), the
//! streamed execution is dropped and the complete block is checked from scratch as before.

use crate::store::Store;
use ledger_core::block::{BlockHeader, CommitCertificate};
use ledger_core::crypto::Digest;
use ledger_core::execute::{BlockExecution, ExecutedBlock};
use ledger_core::rules::VerifiedTx;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;

/// The most proposals executed while streaming at once; others are checked when complete.
pub const STREAMING_EXECUTIONS_MAX: usize = 4;
/// Batches of transactions waiting for a worker; the application waits when it is full.
pub const WORKER_QUEUE_BATCHES_MAX: usize = 64;

enum WorkerMsg {
    Txs(Vec<VerifiedTx>),
    Finish(mpsc::Sender<Result<ExecutedBlock, String>>),
}

/// A worker thread executing one streamed block.
pub struct ExecutionWorker {
    sender: SyncSender<WorkerMsg>,
}

impl ExecutionWorker {
    /// Starts executing block `header` on the committed state, which must be its parent's.
    pub fn start(
        store: Arc<Store>,
        header: BlockHeader,
        last_commit: Option<CommitCertificate>,
        parent_hash: Digest,
    ) -> std::io::Result<ExecutionWorker> {
        let (sender, receiver) = mpsc::sync_channel(WORKER_QUEUE_BATCHES_MAX);
        std::thread::Builder::new()
            .name(format!("execute-{}", header.height))
            .spawn(move || run(&store, header, last_commit, parent_hash, receiver))?;
        Ok(ExecutionWorker { sender })
    }

    /// Queues the next transactions of the block, in order. False if the worker is gone.
    pub fn push(&self, txs: Vec<VerifiedTx>) -> bool {
        self.sender.send(WorkerMsg::Txs(txs)).is_ok()
    }

    /// Waits for the executed block: the state root and header check after the last push.
    pub fn finish(self) -> Result<ExecutedBlock, String> {
        let (reply, answer) = mpsc::channel();
        if self.sender.send(WorkerMsg::Finish(reply)).is_err() {
            return Err("the execution worker stopped".into());
        }
        answer
            .recv()
            .unwrap_or_else(|_| Err("the execution worker stopped".into()))
    }
}

fn run(
    store: &Store,
    header: BlockHeader,
    last_commit: Option<CommitCertificate>,
    parent_hash: Digest,
    receiver: Receiver<WorkerMsg>,
) {
    let height = header.height;
    let snapshot = match store.snapshot() {
        Ok(snapshot) => snapshot,
        Err(error) => return answer_error(receiver, error.to_string()),
    };
    let head = match snapshot.head_height() {
        Ok(head) if head + 1 == height => head,
        Ok(head) => {
            return answer_error(receiver, format!("head {head} is not below block {height}"))
        }
        Err(error) => return answer_error(receiver, error.to_string()),
    };
    let state = snapshot.state(head);
    let mut execution = BlockExecution::start(&state, header, last_commit, parent_hash)
        .map_err(|error| error.to_string());
    for message in receiver {
        match message {
            WorkerMsg::Txs(txs) => {
                if let Ok(running) = &mut execution {
                    if let Some(error) = txs.iter().find_map(|vtx| running.push(vtx).err()) {
                        execution = Err(error.to_string());
                    }
                }
            }
            WorkerMsg::Finish(reply) => {
                let result = execution
                    .and_then(|running| running.finish(&state).map_err(|error| error.to_string()));
                let _ = reply.send(result);
                return;
            }
        }
    }
}

/// Answers the `Finish` that will come with `error` (the application waits for it).
fn answer_error(receiver: Receiver<WorkerMsg>, error: String) {
    for message in receiver {
        if let WorkerMsg::Finish(reply) = message {
            let _ = reply.send(Err(error));
            return;
        }
    }
}
