//! The worker pool: the one place where the queue and the sandbox meet.
//!
//! `claim → load module (by digest, cached) → run → classify → finish`, a role a file:
//! - `claim.rs`: a loop per queue that claims ahead of its slots and, with nothing to
//!   do, takes jobs enqueued in this process directly ([`crate::queue::handoff`]):
//!   stored already and running for it, or to be run before they are stored, their
//!   report going back to the enqueue;
//! - `execute.rs`: one attempt (module load, grants, run) and its report;
//! - `complete.rs`: batches finish reports (all that are ready go in one statement, so
//!   an idle worker reports at once and a busy one in bulk), retrying on a database
//!   outage so no result is lost;
//! - `heartbeat.rs`: extends the leases of held jobs and interrupts those a user
//!   cancelled (or that the store says were taken away);
//! - `maintenance.rs`: rescue of expired leases, promotion of scheduled jobs, pruning,
//!   which the store makes safe to run on every node at once;
//! - `burst.rs`: in burst mode, stops the pool once its queues have nothing left to do.

mod burst;
mod children;
mod claim;
mod classify;
mod complete;
mod execute;
mod grants;
mod heartbeat;
mod maintenance;

pub use children::ChildCaps;
pub use classify::{effective_limits, finish_for};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::queue::{Finish, Store};
use crate::runtime::{CancelHandle, Runtime};

use claim::QueueLoop;

/// Settings of a worker pool. Every field has a default ([`Default`]).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id, recorded on the jobs it holds. Default: host-pid-random.
    pub id: String,
    /// Queues to serve, each with its own concurrency. Default: `default` × 8.
    pub queues: Vec<(String, usize)>,
    /// Serve only this tenant's jobs of those queues. Default none: every tenant's,
    /// fairly (`Store::claim_for`).
    pub tenant: Option<String>,
    /// How long a claimed job is held without a heartbeat. Default 30 s.
    pub lease: Duration,
    /// How often leases are extended and cancellations checked. Default 500 ms.
    pub heartbeat: Duration,
    /// How often an idle worker looks for jobs without being notified. Default 1 s.
    pub poll: Duration,
    /// Run rescue, promotion and pruning from this worker. Default true.
    pub maintenance: bool,
    /// Finished jobs are deleted this long after finishing. Default 7 days.
    pub retention: Duration,
    /// On shutdown, how long running jobs may take to finish before they are given
    /// back. Default 30 s.
    pub grace: Duration,
    /// Opens module secrets for their jobs; a job of a module with secrets fails its
    /// attempt without one. Default none.
    pub secret_key: Option<crate::secrets::SecretKey>,
    /// Burst mode: stop once no job of the queues is running or due within this (later
    /// ones are left for the next run). Default none: run until shutdown.
    pub burst: Option<Duration>,
    /// Bounds on the child jobs a running job may enqueue.
    pub children: ChildCaps,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: default_worker_id(),
            queues: vec![("default".into(), 8)],
            tenant: None,
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(500),
            poll: Duration::from_secs(1),
            maintenance: true,
            retention: Duration::from_secs(7 * 24 * 3600),
            grace: Duration::from_secs(30),
            secret_key: None,
            burst: None,
            children: ChildCaps::default(),
        }
    }
}

fn default_worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!(
        "{host}-{}-{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}

/// The jobs this worker is running: id → (attempt, cancel handle).
type Running = Arc<Mutex<HashMap<i64, (u32, CancelHandle)>>>;

/// A pool of workers over one store and one runtime.
pub struct Worker {
    store: Arc<dyn Store>,
    runtime: Runtime,
    config: WorkerConfig,
}

/// Asks a running [`Worker`] to stop; see [`Worker::run`].
#[derive(Clone)]
pub struct Shutdown(watch::Sender<bool>);

impl Shutdown {
    /// A new, untriggered shutdown signal.
    pub fn new() -> Self {
        Self(watch::channel(false).0)
    }

    /// Stop claiming; running jobs get the grace period, then are given back.
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once shutdown is triggered.
    pub async fn wait(&self) {
        let mut rx = self.subscribe();
        triggered(&mut rx).await;
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves once shutdown is triggered; never if the signal is dropped untriggered.
async fn triggered(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

impl Worker {
    /// A worker pool; nothing runs until [`Worker::run`].
    pub fn new(store: Arc<dyn Store>, runtime: Runtime, config: WorkerConfig) -> Self {
        Self {
            store,
            runtime,
            config,
        }
    }

    /// Runs until `shutdown` is triggered, then stops claiming, lets running jobs
    /// finish within the grace period, gives the rest back, and flushes every report.
    pub async fn run(self, shutdown: Shutdown) {
        let running: Running = Arc::default();
        let (finish_tx, finish_rx) = mpsc::unbounded_channel::<Finish>();
        let completer = tokio::spawn(complete::completer(self.store.clone(), finish_rx));
        let mut background = JoinSet::new();
        // The heartbeat runs until every job is done (through the shutdown grace period).
        background.spawn(heartbeat::heartbeat(
            self.store.clone(),
            self.config.clone(),
            running.clone(),
        ));
        if self.config.maintenance {
            background.spawn(maintenance::maintenance(
                self.store.clone(),
                self.config.clone(),
                shutdown.subscribe(),
            ));
            // Every maintaining node ticks the schedules; the store keeps it one job a tick.
            let scheduler = crate::schedule::Scheduler::new(self.store.clone());
            background.spawn(scheduler.run(shutdown.subscribe()));
        }
        if let Some(wait) = self.config.burst {
            let queues = self.config.queues.iter().map(|(q, _)| q.clone()).collect();
            background.spawn(burst::stop_when_done(
                self.store.clone(),
                queues,
                wait,
                running.clone(),
                shutdown.clone(),
            ));
        }
        let mut claimers = JoinSet::new();
        for (queue, concurrency) in &self.config.queues {
            let q = QueueLoop {
                store: self.store.clone(),
                runtime: self.runtime.clone(),
                config: self.config.clone(),
                queue: queue.clone(),
                concurrency: (*concurrency).max(1),
                running: running.clone(),
                finish: finish_tx.clone(),
                mean_us: Arc::default(),
            };
            claimers.spawn(q.run(shutdown.subscribe()));
        }
        drop(finish_tx);
        while claimers.join_next().await.is_some() {}
        background.shutdown().await;
        // Every job task holds a sender; the completer ends after the last report.
        let _ = completer.await;
        tracing::info!(worker = %self.config.id, "worker stopped");
    }
}
