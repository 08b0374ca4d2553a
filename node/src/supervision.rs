//! A node's long-running tasks, watched: the application loop, transaction gossip, the admission
//! of gossiped batches, the follower of the admitted validator set, and the state pruner.
//!
//! Each of them runs for as long as the node does. One that fails or panics stops the node: the
//! engine first, so the node signs nothing more, then [`Supervisor::failures`] says why, and the
//! binary exits non-zero for whatever supervises it to start it again (it catches up from its
//! peers). Running on without the task would be a silent fallback: a node whose gossip died still
//! votes, but never spreads the transactions its clients send it, and says so nowhere.
//!
//! A task that ends without an error is no failure of its own: the application loop and gossip
//! never do, and the others end only when their input closes, because the task feeding them (the
//! application loop, gossip) ended, which is reported for what it was. Reporting the follower's
//! end as well raced with the application loop's own error: the loop drops its half of the
//! follower's channel before its error reaches the supervisor, and the first report is the one
//! kept, so a full disk was reported as "the follower ended".

use anyhow::anyhow;
use futures::FutureExt as _;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Why a node stopped by itself; `None` while it has not.
pub type Failure = Option<Arc<anyhow::Error>>;

/// Stops the node when one of its tasks fails, and keeps the first reason. Cloned into each task.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    /// Set when the node is stopped on purpose: tasks ending from then on are no failure.
    stopping: AtomicBool,
    /// Stops the consensus engine, so that nothing is signed past a failure.
    stop_signing: Box<dyn Fn() + Send + Sync>,
    failed: watch::Sender<Failure>,
}

impl Supervisor {
    /// A supervisor that calls `stop_signing` on each failure (again after the first is harmless),
    /// before reporting it.
    pub fn new(stop_signing: impl Fn() + Send + Sync + 'static) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                stopping: AtomicBool::new(false),
                stop_signing: Box::new(stop_signing),
                failed: watch::Sender::new(None),
            }),
        }
    }

    /// The first failure, once there is one.
    pub fn failures(&self) -> watch::Receiver<Failure> {
        self.inner.failed.subscribe()
    }

    /// The node is being stopped on purpose: its tasks will end, and that is no failure.
    pub fn stopping(&self) {
        self.inner.stopping.store(true, Ordering::SeqCst);
    }

    /// Stops the node for `error`, unless it is stopping anyway. Only the first failure is kept
    /// as the node's reason; later ones (often its consequences) are logged.
    pub fn fail(&self, error: anyhow::Error) {
        if self.inner.stopping.load(Ordering::SeqCst) {
            tracing::debug!(
                error = format!("{error:#}"),
                "task ended while the node stops"
            );
            return;
        }
        // Stop signing first: the engine must not vote or decide past a write that failed.
        (self.inner.stop_signing)();
        tracing::error!(
            error = format!("{error:#}"),
            "consensus engine stopped, the node signs nothing more"
        );
        self.inner.failed.send_if_modified(|failed| {
            if failed.is_some() {
                return false;
            }
            *failed = Some(Arc::new(error));
            true
        });
    }

    /// Spawns `task`, which runs as long as the node does: its error or a panic fails the node.
    /// Its end without an error, or aborting the returned handle, is no failure (see the module
    /// documentation).
    pub fn spawn(
        &self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> JoinHandle<()> {
        let supervisor = self.clone();
        tokio::spawn(async move {
            match AssertUnwindSafe(task).catch_unwind().await {
                Err(panic) => supervisor.panicked(name, panic),
                Ok(Err(error)) => supervisor.fail(error),
                Ok(Ok(())) => tracing::debug!("the {name} ended: its input closed"),
            }
        })
    }

    /// The node's task or thread `name` panicked: `panic` is what `catch_unwind` caught.
    pub fn panicked(&self, name: &'static str, panic: Box<dyn Any + Send>) {
        self.fail(anyhow!("the {name} panicked: {}", panic_message(&*panic)));
    }
}

/// A panic's message, as `panic!` and failed assertions give it.
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(message), _) => message,
        (_, Some(message)) => message,
        _ => "(no message)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn counting_supervisor() -> (Supervisor, Arc<AtomicUsize>) {
        let stopped = Arc::new(AtomicUsize::new(0));
        let supervisor = Supervisor::new({
            let stopped = stopped.clone();
            move || {
                stopped.fetch_add(1, Ordering::SeqCst);
            }
        });
        (supervisor, stopped)
    }

    async fn first_failure(supervisor: &Supervisor) -> String {
        let mut failures = supervisor.failures();
        let failed =
            tokio::time::timeout(Duration::from_secs(30), failures.wait_for(Option::is_some))
                .await
                .expect("a failure within 30 s")
                .expect("the supervisor is alive");
        format!("{:#}", failed.as_ref().expect("waited for some"))
    }

    #[tokio::test]
    async fn a_task_that_panics_stops_signing_and_names_itself_and_the_panic() {
        let (supervisor, stopped) = counting_supervisor();
        let task = supervisor.spawn("transaction gossip task", async {
            let peers: Vec<u8> = Vec::new();
            assert!(!peers.is_empty(), "gossip lost its peers");
            Ok(())
        });
        task.await.expect("the watcher itself does not panic");
        assert_eq!(
            first_failure(&supervisor).await,
            "the transaction gossip task panicked: gossip lost its peers"
        );
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_task_that_fails_stops_the_node_and_the_first_reason_is_kept() {
        let (supervisor, stopped) = counting_supervisor();
        supervisor
            .spawn("peer follower", async { Ok(()) })
            .await
            .unwrap();
        assert!(
            supervisor.failures().borrow().is_none(),
            "a task whose input closed ended without a failure of its own"
        );
        for error in ["the disk is full", "a later consequence"] {
            supervisor
                .spawn("application loop", async move { Err(anyhow!(error)) })
                .await
                .unwrap();
        }
        assert_eq!(first_failure(&supervisor).await, "the disk is full");
        assert_eq!(
            stopped.load(Ordering::SeqCst),
            2,
            "each failure stops signing"
        );
    }

    #[tokio::test]
    async fn tasks_failing_while_the_node_stops_or_aborted_are_no_failure() {
        let (supervisor, stopped) = counting_supervisor();
        let aborted = supervisor.spawn("transaction gossip task", std::future::pending());
        aborted.abort();
        assert!(aborted.await.unwrap_err().is_cancelled());
        supervisor.stopping();
        supervisor
            .spawn("application loop", async { Err(anyhow!("engine stopped")) })
            .await
            .unwrap();
        supervisor.panicked("state pruner", Box::new("late"));
        assert!(supervisor.failures().borrow().is_none());
        assert_eq!(stopped.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_thread_that_panics_is_reported_with_its_message() {
        let (supervisor, stopped) = counting_supervisor();
        let panic = std::panic::catch_unwind(|| panic!("pruned past the head: {}", 7));
        supervisor.panicked("state pruner", panic.expect_err("it panics"));
        let failed = supervisor.failures().borrow().clone().expect("failed");
        assert_eq!(
            format!("{failed:#}"),
            "the state pruner panicked: pruned past the head: 7"
        );
        assert_eq!(stopped.load(Ordering::SeqCst), 1);
    }
}
