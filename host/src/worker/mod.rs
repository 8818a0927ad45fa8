//! The worker pool: the one place where the queue and the sandbox meet.
//!
//! `claim → load module (by digest, cached) → run → classify → finish`. A claim loop
//! with nothing to do also takes jobs enqueued in this process directly
//! ([`crate::queue::handoff`]): stored already and running for it, or to be run before
//! they are stored, their report going back to the enqueue. Beside the claim loops:
//! - a completer that batches finish reports (all that are ready go in one statement,
//!   so an idle worker reports at once and a busy one reports in bulk), retrying on a
//!   database outage so no result is lost;
//! - a heartbeat that extends the leases of running jobs and interrupts those a user
//!   cancelled (or that the store says were taken away);
//! - maintenance (rescue of expired leases, promotion of scheduled jobs, pruning),
//!   which the store makes safe to run on every node at once.

mod classify;
mod grants;

pub use classify::{effective_limits, finish_for};

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use crate::queue::handoff::{Handed, RunAhead};
use crate::queue::{ErrorKind, Finish, Job, JobError, Outcome as StoreOutcome, Store, StoreEvent};
use crate::runtime::{CancelHandle, JobInfo, Progress, RunError, RunRequest, Runtime};

/// Settings of a worker pool. Every field has a default ([`Default`]).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's id, recorded on the jobs it holds. Default: host-pid-random.
    pub id: String,
    /// Queues to serve, each with its own concurrency. Default: `default` × 8.
    pub queues: Vec<(String, usize)>,
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
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: default_worker_id(),
            queues: vec![("default".into(), 8)],
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_millis(500),
            poll: Duration::from_secs(1),
            maintenance: true,
            retention: Duration::from_secs(7 * 24 * 3600),
            grace: Duration::from_secs(30),
            secret_key: None,
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
        let completer = tokio::spawn(completer(self.store.clone(), finish_rx));
        let mut background = JoinSet::new();
        // The heartbeat runs until every job is done (through the shutdown grace period).
        background.spawn(heartbeat(
            self.store.clone(),
            self.config.clone(),
            running.clone(),
        ));
        if self.config.maintenance {
            background.spawn(maintenance(
                self.store.clone(),
                self.config.clone(),
                shutdown.subscribe(),
            ));
            // Every maintaining node ticks the schedules; the store keeps it one job a tick.
            let scheduler = crate::schedule::Scheduler::new(self.store.clone());
            background.spawn(scheduler.run(shutdown.subscribe()));
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

/// A job task's share of its loop: store, runtime, running jobs, reports, mean time.
type TaskParts = (
    Arc<dyn Store>,
    Runtime,
    Option<crate::secrets::SecretKey>,
    Running,
    mpsc::UnboundedSender<Finish>,
    Arc<AtomicU64>,
);

/// A claim sent to the store and not yet answered.
type ClaimFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Job>, crate::queue::StoreError>> + Send>,
>;

struct QueueLoop {
    store: Arc<dyn Store>,
    runtime: Runtime,
    config: WorkerConfig,
    queue: String,
    concurrency: usize,
    running: Running,
    finish: mpsc::UnboundedSender<Finish>,
    /// Mean wall time of this queue's recent attempts in µs (a moving average; 0 until
    /// the first one ends). It sets how far ahead the loop claims.
    mean_us: Arc<AtomicU64>,
}

/// Prefetched jobs wait at most about this long for a slot: short jobs are claimed
/// several rounds ahead (bigger claims, fewer statements), long ones one round ahead
/// (a job enqueued with a higher priority is not stuck behind a long prefetch).
const CLAIM_AHEAD: Duration = Duration::from_millis(20);

/// On shutdown, how long a claim in flight may take to answer (its jobs are then given
/// back).
const SHUTDOWN_CLAIM_WAIT: Duration = Duration::from_secs(5);

/// At most this many rounds (`concurrency` jobs each) are claimed ahead.
const MAX_ROUNDS_AHEAD: usize = 8;

impl QueueLoop {
    /// How many claimed jobs may wait in `ready`: `concurrency` times the rounds that
    /// fit in [`CLAIM_AHEAD`] at the recent mean attempt time (1 to
    /// [`MAX_ROUNDS_AHEAD`]): more rounds mean fewer claims per job while attempts are
    /// short, one round keeps a long job from holding others back (docs/perf-log.md).
    fn ahead(&self) -> usize {
        let mean = self.mean_us.load(Ordering::Relaxed);
        // No attempt has ended yet (mean 0): one round.
        let rounds = (CLAIM_AHEAD.as_micros() as u64)
            .checked_div(mean)
            .map_or(1, |r| r.clamp(1, MAX_ROUNDS_AHEAD as u64) as usize);
        rounds * self.concurrency
    }

    /// Claims ahead, with at most one claim in flight while jobs run: up to
    /// `concurrency` jobs run and up to [`QueueLoop::ahead`] more wait in `ready`. A
    /// claim is sent as soon as `ready` holds less than a round, for everything that
    /// fits, so the next jobs arrive while the current ones run and a busy queue makes
    /// one claim per several rounds. Prefetched jobs are leased and heartbeated like
    /// running ones, and given back on shutdown.
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.store.subscribe();
        let mut jobs: JoinSet<()> = JoinSet::new();
        let mut ready: VecDeque<(Job, CancelHandle)> = VecDeque::new();
        let mut backoff = Duration::from_millis(50);
        // Whether the last claim may have left jobs behind (it filled its batch).
        let mut more = true;
        // The claim in flight, and how many jobs it asked for.
        let mut claiming: Option<(ClaimFuture, usize)> = None;
        // Whether a wake-up came while a claim was in flight: the claim may have missed
        // the job it announced, so its being short does not mean the queue is empty.
        let mut woke = false;
        // After a failed claim, no new one before this.
        let mut retry_at = tokio::time::Instant::now();
        // Jobs enqueued in this process while this loop is idle come straight here.
        let (taker, mut handed) = match self.store.handoff() {
            Some(handoff) => {
                let (taker, handed) =
                    handoff.register(&self.queue, &self.config.id, self.config.lease);
                (Some(taker), Some(handed))
            }
            None => (None, None),
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            while jobs.try_join_next().is_some() {}
            while jobs.len() < self.concurrency {
                let Some((job, cancel)) = ready.pop_front() else {
                    break;
                };
                self.start(job, cancel, &mut jobs);
            }
            let room = (self.concurrency + self.ahead()).saturating_sub(jobs.len() + ready.len());
            if claiming.is_none()
                && more
                && ready.len() < self.concurrency
                && room > 0
                && tokio::time::Instant::now() >= retry_at
            {
                let (store, queue, id, lease) = (
                    self.store.clone(),
                    self.queue.clone(),
                    self.config.id.clone(),
                    self.config.lease,
                );
                let claim: ClaimFuture =
                    Box::pin(async move { store.claim(&queue, &id, room, lease).await });
                claiming = Some((claim, room));
                woke = false;
            }
            if let Some(taker) = &taker {
                // Idle: nothing claimed waits, no claim is out, the queue looked empty.
                let idle = claiming.is_none() && !more && ready.is_empty();
                taker.offer(if idle {
                    self.concurrency.saturating_sub(jobs.len())
                } else {
                    0
                });
            }
            tokio::select! {
                claimed = async { (&mut claiming.as_mut().expect("a claim in flight").0).await }, if claiming.is_some() => {
                    let (_, limit) = claiming.take().expect("a claim in flight");
                    match claimed {
                        Ok(claimed) => {
                            backoff = Duration::from_millis(50);
                            more = claimed.len() == limit || woke;
                            self.hold(claimed, &mut ready);
                        }
                        Err(e) => {
                            tracing::warn!(queue = %self.queue, error = %e, "claim failed; retrying");
                            retry_at = tokio::time::Instant::now() + backoff;
                            more = true;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
                // A job ended: a slot is free.
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                Some(Handed { job, ahead }) = async { handed.as_mut().expect("a taker").recv().await }, if handed.is_some() => {
                    if let Some(taker) = &taker {
                        taker.received();
                    }
                    match ahead {
                        None => self.hold(vec![job], &mut ready),
                        // Busy since it offered the slot (a claim came back meanwhile):
                        // refused, so its enqueue stores it as usual and no job runs
                        // beyond the concurrency or ahead of claimed ones.
                        Some(ahead) if jobs.len() >= self.concurrency || !ready.is_empty() => {
                            drop(ahead)
                        }
                        Some(ahead) => self.run_ahead(job, ahead, &mut jobs),
                    }
                }
                ev = events.recv() => match ev {
                    Ok(StoreEvent::JobsAvailable { queue }) if queue == self.queue => {
                        more = true;
                        woke = true;
                    }
                    Ok(StoreEvent::Reconnected) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        more = true;
                        woke = true;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = self.store.subscribe();
                    }
                },
                _ = tokio::time::sleep_until(retry_at), if claiming.is_none() && more && retry_at > tokio::time::Instant::now() => {}
                _ = tokio::time::sleep(self.config.poll) => more = true,
                _ = triggered(&mut shutdown) => break,
            }
        }
        // No more hand-offs; jobs handed over meanwhile are given back with the others.
        drop(taker);
        if let Some(mut handed) = handed {
            handed.close();
            // A job to run ahead of its insert is refused by dropping it: its enqueuer
            // enqueues it as usual (or, if it had already stored it running for this
            // worker, gives it back to the queue).
            while let Ok(Handed { job, ahead }) = handed.try_recv() {
                if ahead.is_none() {
                    self.hold(vec![job], &mut ready);
                }
            }
        }
        // A claim in flight may already hold jobs: take them, to give them back. One
        // that does not answer in time leaves its jobs to the rescuer (lease expiry).
        if let Some((claim, _)) = claiming
            && let Ok(Ok(claimed)) = tokio::time::timeout(SHUTDOWN_CLAIM_WAIT, claim).await
        {
            self.hold(claimed, &mut ready);
        }
        // Prefetched jobs never started: give them back at once.
        for (job, _) in ready.drain(..) {
            self.running.lock().expect("running lock").remove(&job.id);
            let _ = self
                .finish
                .send(Finish::new(job.id, job.attempt, StoreOutcome::Release));
        }
        self.drain(jobs).await;
    }

    /// Records claimed jobs as held (the heartbeat extends their leases) and queues them.
    fn hold(&self, claimed: Vec<Job>, ready: &mut VecDeque<(Job, CancelHandle)>) {
        let mut running = self.running.lock().expect("running lock");
        for job in claimed {
            let cancel = CancelHandle::new();
            running.insert(job.id, (job.attempt, cancel.clone()));
            ready.push_back((job, cancel));
        }
    }

    /// What a job's task needs of the loop.
    fn task_parts(&self) -> TaskParts {
        (
            self.store.clone(),
            self.runtime.clone(),
            self.config.secret_key.clone(),
            self.running.clone(),
            self.finish.clone(),
            self.mean_us.clone(),
        )
    }

    fn start(&self, job: Job, cancel: CancelHandle, jobs: &mut JoinSet<()>) {
        let (store, runtime, key, running, finish, mean_us) = self.task_parts();
        jobs.spawn(async move {
            let id = job.id;
            let started = std::time::Instant::now();
            let report = execute(&store, &runtime, key.as_ref(), job, cancel, false).await;
            sample(&mean_us, started);
            running.lock().expect("running lock").remove(&id);
            let _ = finish.send(report);
        });
    }

    /// Runs a job handed over before it is stored (see [`crate::queue::handoff`]). Its
    /// report goes back to the enqueuer, which stores it with the job in one statement. If
    /// the enqueuer stopped waiting and wrote the job running instead, the job is held
    /// from when that may have committed (leased, heartbeated, cancellable) and reported
    /// to the store like a claimed one; if it was refused, the attempt is interrupted and
    /// dropped.
    fn run_ahead(&self, job: Job, ahead: RunAhead, jobs: &mut JoinSet<()>) {
        let (store, runtime, key, running, finish, mean_us) = self.task_parts();
        jobs.spawn(async move {
            let RunAhead {
                report,
                mut committed,
            } = ahead;
            let (id, attempt) = (job.id, job.attempt);
            let started = std::time::Instant::now();
            let cancel = CancelHandle::new();
            let run = execute(&store, &runtime, key.as_ref(), job, cancel.clone(), true);
            tokio::pin!(run);
            // The enqueuer's word, once it has written the job running: stored or not.
            let mut verdict = None;
            let mut done = tokio::select! {
                done = &mut run => done,
                stored = &mut committed => {
                    let stored = stored.unwrap_or(false);
                    if stored {
                        running.lock().expect("running lock").insert(id, (attempt, cancel.clone()));
                    } else {
                        cancel.cancel();
                    }
                    verdict = Some(stored);
                    run.await
                }
            };
            sample(&mean_us, started);
            let stored = match verdict {
                Some(stored) => stored,
                None => match report.send(done) {
                    // The enqueuer stores the job with this report.
                    Ok(()) => return,
                    Err(back) => {
                        done = back;
                        committed.await.unwrap_or(false)
                    }
                },
            };
            running.lock().expect("running lock").remove(&id);
            if stored {
                let _ = finish.send(done);
            }
        });
    }

    /// Shutdown: running jobs get the grace period; then they are interrupted and
    /// given back (their reports say `Release`).
    async fn drain(&self, mut jobs: JoinSet<()>) {
        if jobs.is_empty() {
            return;
        }
        tracing::info!(queue = %self.queue, running = jobs.len(), grace = ?self.config.grace, "waiting for running jobs");
        let all_done = async { while jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.grace, all_done)
            .await
            .is_err()
        {
            tracing::warn!(queue = %self.queue, jobs = jobs.len(), "grace period over; giving jobs back");
            for (_, c) in self.running.lock().expect("running lock").values() {
                c.release();
            }
            while jobs.join_next().await.is_some() {}
        }
    }
}

/// Adds an attempt's wall time to a queue's moving average. Racing updates may lose a
/// sample; the average stays an average.
fn sample(mean_us: &AtomicU64, started: std::time::Instant) {
    let took = (started.elapsed().as_micros() as u64).max(1);
    let mean = mean_us.load(Ordering::Relaxed);
    let mean = if mean == 0 {
        took
    } else {
        mean - mean / 8 + took / 8
    };
    mean_us.store(mean.max(1), Ordering::Relaxed);
}

/// Runs one claimed job and says how to finish it. `ahead`: the job is not stored yet
/// (hand-off), so its attempt gets no network.
async fn execute(
    store: &Arc<dyn Store>,
    runtime: &Runtime,
    key: Option<&crate::secrets::SecretKey>,
    job: Job,
    cancel: CancelHandle,
    ahead: bool,
) -> Finish {
    // Why the store gave no bytes, if it did not.
    let fetch_failed = std::sync::OnceLock::new();
    let prepared = runtime
        .load(&job.digest, || async {
            match store.module_bytes(&job.digest).await {
                Ok(Some(b)) => Ok(b),
                Ok(None) => {
                    let _ = fetch_failed.set(FetchFailed::Gone);
                    Err("the module's bytes are gone")
                }
                Err(e) => {
                    let _ = fetch_failed.set(FetchFailed::Store(e));
                    Err("the store was unavailable")
                }
            }
        })
        .await;
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return load_failed(&job, e, fetch_failed.into_inner()),
    };
    let grants = if prepared.wants_grants() {
        match grants::grants_for(store, key, &job, ahead).await {
            Ok(g) => g,
            Err(report) => return report,
        }
    } else {
        Default::default()
    };
    let progress = {
        let (store, id, attempt) = (store.clone(), job.id, job.attempt);
        let handle = tokio::runtime::Handle::current();
        // A guest may report progress in a tight loop: only a changed percentage is
        // written (at most 101 writes an attempt); the last report is saved at finish.
        let last = std::sync::atomic::AtomicU8::new(u8::MAX);
        Arc::new(move |p: Progress| {
            if last.swap(p.percent, std::sync::atomic::Ordering::Relaxed) == p.percent {
                return;
            }
            let store = store.clone();
            let p = crate::queue::Progress {
                percent: p.percent,
                note: p.note,
            };
            handle.spawn(async move {
                let _ = store.set_progress(id, attempt, p).await;
            });
        })
    };
    let request = RunRequest {
        input: job.input.clone(),
        limits: effective_limits(&job.limits, &runtime.max_limits()),
        job: JobInfo {
            id: job.id.to_string(),
            module: job.module.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        },
        cancel: cancel.clone(),
        progress: Some(progress),
        grants,
    };
    let report = runtime.run(&prepared, request).await;
    let finish = finish_for(&job, report, cancel.is_released());
    record_metrics(&job.tenant, &job.module, &finish);
    finish
}

/// Why the store gave a worker no module bytes.
enum FetchFailed {
    /// It has none under the digest (the module was deleted and its bytes swept).
    Gone,
    /// It failed (unreachable, or an error whose words are for the operator).
    Store(crate::queue::StoreError),
}

/// The report of an attempt whose module could not be loaded. Bytes gone for good fail
/// the job (`module_missing`); anything else (the store unavailable, a host failure) is
/// worth another attempt. The tenant's message says which in the product's words; the
/// store's and the host's own (hosts, paths, SQL states) go to the log.
fn load_failed(job: &Job, error: RunError, fetch: Option<FetchFailed>) -> Finish {
    let missing = matches!(fetch, Some(FetchFailed::Gone));
    let retry = !missing && job.attempt < job.max_attempts;
    let why = match (fetch, error) {
        (Some(FetchFailed::Gone), _) => "its bytes are gone (the module was deleted)".into(),
        (Some(FetchFailed::Store(e)), _) => {
            tracing::warn!(job = job.id, digest = %job.digest, error = %e, "reading a module's bytes failed");
            "the store was unavailable".into()
        }
        (None, RunError::Invalid(invalid)) => invalid.to_string(),
        (None, RunError::Internal(detail)) => {
            tracing::error!(job = job.id, digest = %job.digest, error = %detail, "loading a module failed");
            "the worker failed to prepare it".to_owned()
        }
    };
    let error = JobError::new(
        if missing {
            ErrorKind::ModuleMissing
        } else {
            ErrorKind::Trap
        },
        format!(
            "could not load module `{}` ({}): {why}; {}",
            job.module,
            job.digest,
            if retry { "retrying" } else { "giving up" }
        ),
    );
    retry_or_fail(job, retry, error)
}

/// An attempt that failed before its guest ran: retried after the backoff, or failed.
fn retry_or_fail(job: &Job, retry: bool, error: JobError) -> Finish {
    let outcome = if retry {
        StoreOutcome::Retry {
            error,
            retry_at: chrono::Utc::now() + crate::queue::backoff(job.attempt),
        }
    } else {
        StoreOutcome::Fail { error }
    };
    Finish::new(job.id, job.attempt, outcome)
}

/// Counts a finished attempt in the process metrics (`/metrics`).
fn record_metrics(tenant: &str, module: &str, finish: &Finish) {
    let (outcome, kind) = match &finish.outcome {
        StoreOutcome::Complete { .. } => ("completed", None),
        StoreOutcome::Retry { error, .. } => ("retried", Some(error.kind.as_str())),
        StoreOutcome::Fail { error } => ("failed", Some(error.kind.as_str())),
        StoreOutcome::Cancelled => ("cancelled", None),
        StoreOutcome::Release => return,
    };
    crate::metrics::attempt_finished(
        tenant,
        module,
        outcome,
        kind,
        finish.usage.duration_ms as f64 / 1000.0,
        finish.usage.fuel,
    );
}

/// Sends finish reports in batches: whatever is queued goes in one call. A batch the
/// store refuses (a value it cannot hold) is sent again report by report, and a report
/// refused alone fails its job instead ([`Finish::refused`]): no report is retried
/// forever.
async fn completer(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Finish>) {
    const MAX_BATCH: usize = 500;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = send(&store, batch.clone()).await {
            tracing::warn!(error = %e, jobs = batch.len(), "the store refused a batch of finish reports; sending them one by one");
            for item in batch.drain(..) {
                let Err(e) = send(&store, vec![item.clone()]).await else {
                    continue;
                };
                let id = item.id;
                tracing::error!(job = id, error = %e, "the store refused a finish report; failing the job");
                if let Err(e) = send(&store, vec![item.refused()]).await {
                    tracing::error!(job = id, error = %e, "the store refused the failure too; the job is rescued when its lease expires");
                }
            }
        }
        batch.clear();
    }
}

/// Sends `items` until the store answers: an outage is waited out (never drop a report:
/// the job would run again after its lease), a refusal is returned.
async fn send(store: &Arc<dyn Store>, items: Vec<Finish>) -> Result<(), crate::queue::StoreError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.finish(items.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, jobs = items.len(), "reporting finished jobs failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Extends leases and interrupts jobs that were cancelled or taken away.
async fn heartbeat(store: Arc<dyn Store>, config: WorkerConfig, running: Running) {
    let mut events = store.subscribe();
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupt = |ids: &[i64]| {
        let r = running.lock().expect("running lock");
        for id in ids {
            if let Some((_, c)) = r.get(id) {
                c.cancel();
            }
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let ids: Vec<i64> = running.lock().expect("running lock").keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                match store.heartbeat(&config.id, &ids, config.lease).await {
                    Ok(hb) => {
                        interrupt(&hb.cancel_requested);
                        interrupt(&hb.lost);
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
            ev = events.recv() => match ev {
                Ok(StoreEvent::CancelRequested { id }) => interrupt(&[id]),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => events = store.subscribe(),
                _ => {}
            },
        }
    }
}

/// Rescue, promotion and pruning on a timer.
async fn maintenance(
    store: Arc<dyn Store>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let rescue_every =
        (config.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let mut rescue = tokio::time::interval(rescue_every);
    let mut promote = tokio::time::interval(Duration::from_millis(250));
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    for t in [&mut rescue, &mut promote, &mut prune] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = rescue.tick() => match store.rescue().await {
                Ok(r) if !r.retried.is_empty() || !r.failed.is_empty() => {
                    tracing::info!(retried = r.retried.len(), failed = r.failed.len(), "rescued jobs of vanished workers");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            },
            _ = promote.tick() => {
                if let Err(e) = store.promote_scheduled().await {
                    tracing::warn!(error = %e, "promoting scheduled jobs failed");
                }
            }
            _ = prune.tick() => match store.prune(config.retention).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned finished jobs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            },
            _ = triggered(&mut shutdown) => return,
        }
    }
}
