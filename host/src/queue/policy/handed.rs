//! The hand-off, one design for every driver: a lone due job without a key, enqueued while
//! a worker loop of this process idles on its queue, goes to that loop with no claim.
//!
//! A job that [may run ahead](may_run_ahead) is handed over *before* it is stored, with an
//! id drawn ahead, and the enqueue waits up to [`RUN_AHEAD_WAIT`] for the attempt's report;
//! then it inserts the job with that report ([`Driver::insert_finished`]): one commit
//! instead of three (insert, claim, finish). An attempt not done by then is inserted
//! running for the worker ([`Driver::insert_running`]), which holds it from when that may
//! have committed and reports it like a claimed job. A job that may not run ahead is
//! inserted running first and handed over after the commit.
//!
//! Invariant: a job runs before it is stored only if its attempt can have no effect
//! outside its sandbox, so an attempt whose job is never stored (the insert failed, the
//! caller hung up, the process died) did nothing. [`may_run_ahead`] is the one place that
//! decides it.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::oneshot;

use super::Queue;
use crate::queue::driver::Driver;
use crate::queue::handoff::{Handed, Reservation, RunAhead};
use crate::queue::{Finish, Job, JobState, NewJob, Outcome, Store, StoreError, StoreEvent};

/// How long an enqueue waits for a job it handed over to be run before it stores it
/// running instead (and the job's report goes to the store as a claimed job's does).
const RUN_AHEAD_WAIT: Duration = Duration::from_millis(2);

/// Job ids drawn ahead per round trip, for jobs run before they are stored.
const ID_BLOCK: usize = 16;

/// Whether `job` may run before it is stored. Only a job whose attempt has no effect
/// outside its sandbox may: one that can reach the network must be stored (and so
/// visible, cancellable, rescued) before its guest starts.
pub(crate) fn may_run_ahead(job: &NewJob) -> bool {
    job.may_run_ahead
}

/// Job ids drawn from the database ahead of use.
#[derive(Default)]
pub(super) struct IdCache {
    /// In the order drawn.
    ids: VecDeque<i64>,
    /// A block is being drawn in the background.
    drawing: bool,
}

impl<D: Driver> Queue<D> {
    /// Enqueues `new` for the worker of `slot`: the job as stored (running, or finished by
    /// its first attempt), or `None` if the worker went away first (the job is then to be
    /// enqueued as usual).
    pub(super) async fn enqueue_handed(
        &self,
        new: NewJob,
        slot: Reservation,
    ) -> Result<Option<Job>, StoreError> {
        let driver = &self.inner.driver;
        let digest = match &new.digest {
            Some(digest) => digest.clone(),
            None => driver
                .latest_digest(&new.tenant, &new.module)
                .await?
                .ok_or_else(|| StoreError::ModuleNotFound {
                    module: new.module.clone(),
                })?,
        };
        let ahead = may_run_ahead(&new);
        let id = self.draw_id().await?;
        let now = chrono::Utc::now();
        let lease = slot.lease();
        let mut job = Job::just_enqueued(new, id, digest, JobState::Running, now, now);
        job.max_attempts = job.max_attempts.min(i32::MAX as u32);
        job.attempt = 1;
        job.started_at = Some(now);
        job.worker_id = Some(slot.worker().to_owned());
        job.lease_expires_at = chrono::Duration::from_std(lease).ok().map(|l| now + l);
        if !ahead {
            return self.store_then_hand(job, lease, slot).await.map(Some);
        }
        let (report_tx, mut report_rx) = oneshot::channel();
        let (committed_tx, committed_rx) = oneshot::channel();
        let handed = Handed {
            job: job.clone(),
            ahead: Some(RunAhead {
                report: report_tx,
                committed: committed_rx,
            }),
        };
        if slot.deliver(handed).is_err() {
            return Ok(None);
        }
        let report = match tokio::time::timeout(RUN_AHEAD_WAIT, &mut report_rx).await {
            Ok(Ok(report)) => Some(report),
            // The worker refused it (it is stopping, or busy since it offered the slot).
            Ok(Err(_)) => return Ok(None),
            Err(_) => {
                // Whatever the worker sends from now on fails, and it waits for the verdict.
                report_rx.close();
                report_rx.try_recv().ok()
            }
        };
        if let Some(report) = report {
            let stored = self.insert_finished(&job, report).await;
            self.draw_ids_if_low();
            return stored.map(Some);
        }
        // In a task of its own, so that a caller that goes away (an HTTP client hanging
        // up) cannot stop it between the commit and the verdict.
        let queue = self.clone();
        detached(async move {
            let stored = queue.inner.driver.insert_running(&job, lease).await;
            // Refused by the database: not stored. Anything else (a broken connection)
            // may have been committed: the worker holds the job, and its heartbeat finds
            // it lost if it was not.
            let held = stored
                .as_ref()
                .map_or_else(|e| !super::refused(e), |_| true);
            if committed_tx.send(held).is_err()
                && let Ok(job) = &stored
            {
                // The worker stopped meanwhile: the job goes back to its queue.
                give_back(&queue, job).await;
            }
            queue.draw_ids_if_low();
            stored.map(Some)
        })
        .await
    }

    /// A job that may not run ahead: inserted running for the slot's worker, then handed
    /// over after the commit (or given back if the worker went away meanwhile).
    async fn store_then_hand(
        &self,
        job: Job,
        lease: Duration,
        slot: Reservation,
    ) -> Result<Job, StoreError> {
        // A caller that goes away cannot stop it between the commit and the hand-off.
        let queue = self.clone();
        detached(async move {
            let stored = queue.inner.driver.insert_running(&job, lease).await?;
            queue.draw_ids_if_low();
            let handed = Handed {
                job: stored.clone(),
                ahead: None,
            };
            if let Err(handed) = slot.deliver(handed) {
                give_back(&queue, &handed.job).await;
            }
            Ok(stored)
        })
        .await
    }

    /// `job` stored with its first attempt's `report`; a report the database refuses for
    /// its content stores the job failed, saying so.
    async fn insert_finished(&self, job: &Job, report: Finish) -> Result<Job, StoreError> {
        let driver = &self.inner.driver;
        let report = super::storable::finish(report);
        let child_queues = super::children_due_now(&report.children);
        let stored = match driver.insert_finished(job, &report).await {
            Err(e) if !e.is_transient() => {
                tracing::error!(job = job.id, error = %e, "the store refused a finish report; failing the job");
                driver.insert_finished(job, &report.refused()).await
            }
            stored => stored,
        }?;
        if stored.state == JobState::Available {
            // Released: this process's workers are told (other nodes by the driver).
            self.send(StoreEvent::JobsAvailable {
                queue: stored.queue.clone(),
            });
        }
        if stored.state == JobState::Completed {
            self.wake_queues(child_queues.iter().map(String::as_str));
        }
        Ok(stored)
    }

    /// An id for a new job, from a block drawn ahead ([`ID_BLOCK`] a round trip).
    async fn draw_id(&self) -> Result<i64, StoreError> {
        if let Some(id) = self.ids().ids.pop_front() {
            return Ok(id);
        }
        let mut drawn = self.inner.driver.draw_ids(ID_BLOCK).await?.into_iter();
        let id = drawn
            .next()
            .ok_or_else(|| StoreError::Database("the id sequence answered nothing".into()))?;
        self.ids().ids.extend(drawn);
        Ok(id)
    }

    /// Draws the next block of ids in the background once half of this one is used. Called
    /// after a hand-off's insert, so that the draw (and its commit) does not compete with it.
    fn draw_ids_if_low(&self) {
        {
            let mut cache = self.ids();
            if cache.drawing || cache.ids.len() >= ID_BLOCK / 2 {
                return;
            }
            cache.drawing = true;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            let drawn = queue.inner.driver.draw_ids(ID_BLOCK).await;
            let mut cache = queue.ids();
            cache.drawing = false;
            match drawn {
                Ok(drawn) => cache.ids.extend(drawn),
                Err(e) => tracing::warn!(error = %e, "drawing job ids ahead failed"),
            }
        });
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, IdCache> {
        self.inner.ids.lock().expect("ids lock")
    }
}

/// Gives a job stored running for a worker that has gone away back to its queue
/// (`Outcome::Release`: available at once, the attempt not counted). If that fails, the
/// job runs again after its lease expires.
async fn give_back<D: Driver>(queue: &Queue<D>, job: &Job) {
    let release = Finish::new(job.id, job.attempt, Outcome::Release);
    if let Err(e) = queue.finish(vec![release]).await {
        tracing::warn!(job = job.id, error = %e, "could not give back a job whose worker stopped; it runs again after its lease expires");
    }
}

/// Runs `work` in a task of its own and waits for it: a caller that goes away (an HTTP
/// client hanging up) cannot stop it between a commit and the hand-off that must follow.
async fn detached<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .map_err(|e| StoreError::Database(format!("the enqueue task failed: {e}")))?
}
