//! Running a job: a claimed one, or one handed over before it is stored; loading its
//! module, running the attempt and turning the report into a finish.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::children::{ChildCaps, JobSpawner};
use super::claim::QueueLoop;
use super::{Running, effective_limits, finish_for, grants};
use crate::queue::handoff::RunAhead;
use crate::queue::{ErrorKind, Finish, Job, JobError, Outcome as StoreOutcome, Store};
use crate::runtime::{CancelHandle, JobInfo, Progress, RunError, RunRequest, Runtime};

/// A job task's share of its loop: store, runtime, running jobs, reports, mean time.
type TaskParts = (
    Attempt,
    Running,
    mpsc::UnboundedSender<Finish>,
    Arc<AtomicU64>,
);

/// What running an attempt needs of its loop.
#[derive(Clone)]
struct Attempt {
    store: Arc<dyn Store>,
    runtime: Runtime,
    key: Option<crate::secrets::SecretKey>,
    caps: ChildCaps,
}

impl QueueLoop {
    /// What a job's task needs of the loop.
    fn task_parts(&self) -> TaskParts {
        (
            Attempt {
                store: self.store.clone(),
                runtime: self.runtime.clone(),
                key: self.config.secret_key.clone(),
                caps: self.config.children,
            },
            self.running.clone(),
            self.finish.clone(),
            self.mean_us.clone(),
        )
    }

    pub(super) fn start(&self, job: Job, cancel: CancelHandle, jobs: &mut JoinSet<()>) {
        let (attempt, running, finish, mean_us) = self.task_parts();
        jobs.spawn(async move {
            let id = job.id;
            let started = std::time::Instant::now();
            let report = execute(&attempt, job, cancel, false).await;
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
    pub(super) fn run_ahead(&self, job: Job, ahead: RunAhead, jobs: &mut JoinSet<()>) {
        let (parts, running, finish, mean_us) = self.task_parts();
        jobs.spawn(async move {
            let RunAhead {
                report,
                mut committed,
            } = ahead;
            let (id, attempt) = (job.id, job.attempt);
            let started = std::time::Instant::now();
            let cancel = CancelHandle::new();
            let run = execute(&parts, job, cancel.clone(), true);
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
async fn execute(attempt: &Attempt, job: Job, cancel: CancelHandle, ahead: bool) -> Finish {
    let Attempt {
        store,
        runtime,
        key,
        caps,
    } = attempt;
    let key = key.as_ref();
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
    let spawner = Arc::new(JobSpawner::new(store.clone(), &job, *caps));
    let request = RunRequest {
        input: job.input.clone(),
        limits: effective_limits(&job.limits, &runtime.max_limits_for(prepared.language())),
        job: JobInfo {
            id: job.id.to_string(),
            module: job.module.clone(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
        },
        cancel: cancel.clone(),
        progress: Some(progress),
        grants,
        spawner: Some(spawner.clone()),
    };
    let mut report = runtime.run(&prepared, request).await;
    let made = std::mem::take(&mut report.children);
    let mut finish = finish_for(&job, report, cancel.is_released());
    if matches!(finish.outcome, StoreOutcome::Complete { .. }) {
        finish.children = spawner.children(made).await;
    }
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
pub(super) fn retry_or_fail(job: &Job, retry: bool, error: JobError) -> Finish {
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
