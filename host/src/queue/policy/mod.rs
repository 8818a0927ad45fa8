//! [`Queue`]: the one [`Store`] over any [`Driver`]. Every policy of the store is here,
//! once for both backends: the hand-off and run-ahead (`handed.rs`), idempotency
//! retries, key checks, the module no-op and digest check, this process's wake-ups
//! (`events.rs`), the order and checking of claims, and capping what a guest can make
//! long before it is stored (`storable.rs`).

mod coalesce;
mod events;
mod handed;
mod pauses;
mod storable;
mod tenants;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::broadcast;

use super::deps::{self, Released};
use super::driver::{Driver, Inserted, KeyRow};
use super::handoff::Handoff;
use super::{
    Enqueued, Finish, Heartbeat, Job, JobCount, JobFilter, JobState, JobSummary, Module,
    ModuleSettings, NewJob, NewKey, NewModule, NewSchedule, Page, Principal, Progress, PutModule,
    QueueInfo, RescueReport, Schedule, ScheduleAdvance, Scope, Store, StoreError, StoreEvent, keys,
};
use events::{EventsOnDrop, LostWorkers};
use storable::storable_progress;

/// Events buffered per subscriber before it lags.
const EVENT_CAPACITY: usize = 4096;
/// Attempts at an enqueue that raced a concurrent one with the same idempotency key.
const ENQUEUE_TRIES: usize = 5;
/// Rows deleted per statement by `prune`, so other writers get turns in between.
const PRUNE_BATCH: u32 = 10_000;
/// Jobs promoted per statement by `promote_scheduled`.
const PROMOTE_BATCH: u32 = 10_000;

/// The store: policy over a backend's [`Driver`]. Cheap to clone; clones share the driver,
/// the event channel and the hand-off.
pub struct Queue<D> {
    inner: Arc<Shared<D>>,
}

struct Shared<D> {
    driver: D,
    /// This process's subscribers; a driver's listener forwards other nodes' events here.
    events: broadcast::Sender<StoreEvent>,
    /// This process's idle workers, to hand lone enqueued jobs to.
    handoff: Arc<Handoff>,
    /// Job ids drawn ahead, for jobs handed over before they are stored.
    ids: Mutex<handed::IdCache>,
    /// Which queues have a pause, and which tenants and queues a cap, as far as this
    /// process knows.
    held: Arc<pauses::Held>,
    /// The server's default `max_running` of tenants without their own: 0 none, else
    /// the cap plus one.
    default_max_running: AtomicU64,
}

impl<D> Clone for Queue<D> {
    fn clone(&self) -> Self {
        Queue {
            inner: self.inner.clone(),
        }
    }
}

impl<D> std::fmt::Debug for Queue<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

/// A channel for [`Queue::new`]: a driver that hears other nodes sends on a clone of it.
pub fn event_channel() -> broadcast::Sender<StoreEvent> {
    broadcast::channel(EVENT_CAPACITY).0
}

impl<D: Driver> Queue<D> {
    /// The store over `driver`, whose other nodes' events (if any) arrive on `events`.
    pub fn new(driver: D, events: broadcast::Sender<StoreEvent>) -> Self {
        let held = Arc::<pauses::Held>::default();
        // Other nodes' pauses arrive as events; without a runtime there is no other node.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(pauses::watch(
                held.clone(),
                events.subscribe(),
                events.downgrade(),
            ));
        }
        Queue {
            inner: Arc::new(Shared {
                driver,
                events,
                handoff: Arc::default(),
                ids: Mutex::default(),
                held,
                default_max_running: AtomicU64::new(0),
            }),
        }
    }

    /// The backend under the policy, for its own tests.
    pub fn driver(&self) -> &D {
        &self.inner.driver
    }

    fn send(&self, event: StoreEvent) {
        // No receivers is fine: nobody is waiting.
        let _ = self.inner.events.send(event);
    }

    fn wake_queues<'a>(&self, queues: impl IntoIterator<Item = &'a str>) {
        let queues: HashSet<&str> = queues.into_iter().collect();
        for queue in queues {
            self.send(StoreEvent::JobsAvailable {
                queue: queue.to_owned(),
            });
        }
    }

    fn wake_finished(&self, ids: Vec<i64>) {
        if !ids.is_empty() {
            self.send(StoreEvent::JobsFinished { ids });
        }
    }

    /// Wakes this process's workers of dependents that became available and long-polls of
    /// those cancelled down a chain (other nodes were told by the driver).
    fn wake_dependents(&self, released: Released) {
        self.wake_queues(released.available.iter().map(String::as_str));
        self.wake_finished(released.cancelled);
    }

    /// One page of a listing from `rows`, read with one more than the page (which tells
    /// that more follow).
    fn page<T>(mut jobs: Vec<T>, limit: u32, id: impl Fn(&T) -> i64) -> Page<T> {
        let next_cursor = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(id)
        } else {
            None
        };
        Page { jobs, next_cursor }
    }
}

/// The length of a page of `filter`'s listing: 1..=1000, 0 meaning 100.
fn page_limit(filter: &JobFilter) -> u32 {
    match filter.limit {
        0 => 100,
        n => n.min(1000),
    }
}

/// What the driver reads for a page of `filter`: one row more than the page, which tells
/// that more follow.
fn page_filter(filter: &JobFilter) -> JobFilter {
    JobFilter {
        limit: page_limit(filter) + 1,
        ..filter.clone()
    }
}

/// Whether the database refused a statement, so that it wrote nothing (as opposed to an
/// error whose statement may have committed, such as a broken connection).
fn refused(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::ModuleNotFound { .. }
            | StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::NotFound
    )
}

/// Refuses a batch with a job that may never run (`max_attempts` 0).
fn check_attempts(jobs: &[NewJob]) -> Result<(), StoreError> {
    match jobs.iter().find(|job| job.max_attempts == 0) {
        Some(job) => Err(StoreError::Invalid(format!(
            "a job of module `{}` has max_attempts 0; it needs at least 1",
            job.module
        ))),
        None => Ok(()),
    }
}

/// Whether a listing's module, queue and schedule could name any job: all are slugs when
/// stored,
/// and anything else (a NUL, which PostgreSQL's text refuses) matches nothing.
fn may_match(filter: &JobFilter) -> bool {
    [&filter.module, &filter.queue, &filter.schedule]
        .into_iter()
        .flatten()
        .all(|name| super::keys::is_slug(name))
}

/// The distinct queues of `children` with a child due by the time they are stored (a
/// second's margin: one due by the commit is stored available): woken after the commit.
pub(super) fn children_due_now(children: &[crate::queue::ChildJob]) -> Vec<String> {
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut queues: Vec<String> = children
        .iter()
        .filter(|c| c.job.run_at.is_none_or(|at| at <= now))
        .map(|c| c.job.queue.clone())
        .collect();
    queues.sort_unstable();
    queues.dedup();
    queues
}

/// Puts claimed jobs in claim order, fair between tenants: each tenant's jobs ranked by
/// priority (highest first), run_at, id; then rank first, so every tenant's first job
/// comes before anyone's second, and among equal ranks the earliest run_at, then id.
/// A driver's `UPDATE … RETURNING` does not keep any order.
fn claim_order(mut jobs: Vec<Job>) -> Vec<Job> {
    jobs.sort_by(|a, b| {
        (&a.tenant, std::cmp::Reverse(a.priority), a.run_at, a.id).cmp(&(
            &b.tenant,
            std::cmp::Reverse(b.priority),
            b.run_at,
            b.id,
        ))
    });
    let mut rank = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let same = i > 0 && jobs[i - 1].tenant == job.tenant;
        rank.push(if same { rank[i - 1] + 1 } else { 0u32 });
    }
    let mut ranked: Vec<(u32, Job)> = rank.into_iter().zip(jobs).collect();
    ranked.sort_by(|(ra, a), (rb, b)| (ra, a.run_at, a.id).cmp(&(rb, b.run_at, b.id)));
    ranked.into_iter().map(|(_, job)| job).collect()
}

/// The answer for a heartbeat of `asked`, given the `(id, cancel_requested)` of the jobs
/// the worker still holds: the rest were taken away (`lost`).
fn heartbeat_answer(asked: &[i64], held: Vec<(i64, bool)>) -> Heartbeat {
    let mut still = HashSet::with_capacity(held.len());
    let mut report = Heartbeat::default();
    for (id, cancel) in held {
        still.insert(id);
        if cancel {
            report.cancel_requested.push(id);
        }
    }
    report.lost = asked
        .iter()
        .copied()
        .filter(|id| !still.contains(id))
        .collect();
    report.cancel_requested.sort_unstable();
    report
}

#[async_trait::async_trait]
impl<D: Driver> Store for Queue<D> {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        check_attempts(&jobs)?;
        coalesce::check(&jobs)?;
        deps::check(&jobs)?;
        // A job of a paused queue or a capped tenant or queue is never handed over (nor
        // is one whose pauses and caps cannot be read): it waits for a claim, which counts.
        if let Some(slot) = self.inner.handoff.reserve_for(&jobs)
            && !(self.held_back(&jobs[0].tenant, &jobs[0].queue).await).unwrap_or(true)
            && let Some(job) = self.enqueue_handed(jobs[0].clone(), slot).await?
        {
            return Ok(vec![Enqueued {
                job,
                duplicate: false,
                coalesced: false,
            }]);
        }
        // If the outcome is unknown (an error after the commit, or the caller dropped this
        // future), this process's workers of the batch's queues are woken anyway.
        let queues: HashSet<&str> = jobs.iter().map(|job| job.queue.as_str()).collect();
        let unsure = EventsOnDrop::new(
            &self.inner.events,
            queues
                .into_iter()
                .map(|queue| StoreEvent::JobsAvailable {
                    queue: queue.to_owned(),
                })
                .collect(),
        );
        // A coalescing key's items of the batch go to the driver as one job.
        let (mut jobs, fold) = coalesce::fold(jobs);
        if let Some(fold) = &fold {
            fold.remap(&mut jobs);
        }
        for _ in 0..ENQUEUE_TRIES {
            match self.inner.driver.insert_batch(jobs).await {
                Ok(Inserted::Done(enqueued)) => {
                    let enqueued = match &fold {
                        Some(fold) => fold.unfold(enqueued)?,
                        None => enqueued,
                    };
                    // Committed: wake this process's workers of queues with a job due now.
                    self.wake_queues(
                        enqueued
                            .iter()
                            .filter(|e| !e.duplicate && e.job.state == JobState::Available)
                            .map(|e| e.job.queue.as_str()),
                    );
                    unsure.disarm();
                    return Ok(enqueued);
                }
                // A key raced a concurrent insert: nothing was written; again.
                Ok(Inserted::Raced(back)) => jobs = back,
                Err(e) => {
                    if refused(&e) {
                        unsure.disarm();
                    }
                    return Err(e);
                }
            }
        }
        unsure.disarm();
        Err(StoreError::Conflict(
            "the batch kept changing under concurrent enqueues (idempotency keys) or module \
             uploads; try again"
                .into(),
        ))
    }

    async fn claim_for(
        &self,
        tenant: Option<&str>,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let jobs = self
            .inner
            .driver
            .claim(
                tenant,
                queue,
                worker_id,
                limit,
                lease,
                self.default_max_running(),
            )
            .await?;
        if jobs.len() < limit {
            self.refresh_held();
        }
        Ok(claim_order(jobs))
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        if ids.is_empty() {
            return Ok(Heartbeat::default());
        }
        let held = self.inner.driver.heartbeat(worker_id, ids, lease).await?;
        Ok(heartbeat_answer(ids, held))
    }

    async fn finish(&self, items: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // One report per job: a second report of the same job in the call is refused.
        let mut seen = HashSet::with_capacity(items.len());
        let first: Vec<bool> = items.iter().map(|item| seen.insert(item.id)).collect();
        let asked: Vec<i64> = items.iter().map(|item| item.id).collect();
        let mut unique: Vec<Finish> = items
            .into_iter()
            .zip(&first)
            .filter(|(_, first)| **first)
            .map(|(item, _)| storable::finish(item))
            .collect();
        // In id order, the order an enqueue locks the jobs it depends on: a finish and
        // such an enqueue then take their common rows in one order, and never deadlock.
        unique.sort_by_key(|item| item.id);
        let ids: Vec<i64> = unique.iter().map(|item| item.id).collect();
        // The queues of each report's children due now, woken if it completes.
        let child_queues: HashMap<i64, Vec<String>> = unique
            .iter()
            .filter(|item| !item.children.is_empty())
            .map(|item| (item.id, children_due_now(&item.children)))
            .collect();
        // If the outcome is unknown, this process's long-polls of these jobs look again.
        let unsure = EventsOnDrop::new(
            &self.inner.events,
            vec![StoreEvent::JobsFinished { ids: ids.clone() }],
        );
        let done = self.inner.driver.finish(unique).await?;
        let applied = done.applied;
        let mut finished = Vec::new();
        let mut released = Vec::new();
        // Under a cap, a job that stops running leaves room: this process's workers of
        // its queue claim again (they may have stopped after an empty, capped claim).
        let capped = self.may_cap();
        for (id, applied) in ids.iter().zip(&applied) {
            if let Some((JobState::Completed, Some(queues))) =
                applied.as_ref().map(|a| (a.state, child_queues.get(id)))
            {
                released.extend(queues.iter().map(String::as_str));
            }
            let Some(applied) = applied else { continue };
            if applied.state == JobState::Available || capped {
                released.push(applied.queue.as_str());
            }
            if applied.state.is_finished() {
                finished.push(*id);
            }
        }
        self.wake_finished(finished);
        self.wake_queues(released);
        self.wake_dependents(done.released);
        unsure.disarm();
        let answers: HashMap<i64, bool> = ids
            .iter()
            .zip(&applied)
            .map(|(id, applied)| (*id, applied.is_some()))
            .collect();
        Ok(asked
            .iter()
            .zip(first)
            .map(|(id, first)| first && answers.get(id).copied().unwrap_or(false))
            .collect())
    }

    async fn draw_ids(&self, n: usize) -> Result<Vec<i64>, StoreError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        self.inner.driver.draw_ids(n).await
    }

    async fn job_id_by_key(&self, tenant: &str, key: &str) -> Result<Option<i64>, StoreError> {
        self.inner.driver.job_id_by_key(tenant, key).await
    }

    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: Progress,
    ) -> Result<bool, StoreError> {
        let progress = storable_progress(&progress);
        self.inner.driver.set_progress(id, attempt, &progress).await
    }

    async fn rescue(&self) -> Result<RescueReport, StoreError> {
        let Some((rescued, dependents)) = self.inner.driver.rescue().await? else {
            return Ok(RescueReport {
                skipped: true,
                ..RescueReport::default()
            });
        };
        let mut report = RescueReport::default();
        let mut workers = LostWorkers::default();
        for job in &rescued {
            workers.add(job.worker.clone(), job.id);
            match job.state {
                JobState::Retryable => report.retried.push(job.id),
                JobState::Cancelled => report.cancelled.push(job.id),
                _ => report.failed.push(job.id),
            }
        }
        workers.log();
        for ids in [
            &mut report.retried,
            &mut report.failed,
            &mut report.cancelled,
        ] {
            ids.sort_unstable();
        }
        if !rescued.is_empty() {
            tracing::info!(
                retried = report.retried.len(),
                failed = report.failed.len(),
                cancelled = report.cancelled.len(),
                "rescued jobs whose worker stopped renewing its lease"
            );
        }
        let mut finished = report.failed.clone();
        finished.extend(&report.cancelled);
        self.wake_finished(finished);
        // Under a cap, every rescued job left room in its queue (as in `finish`).
        let capped = self.may_cap();
        self.wake_queues(
            rescued
                .iter()
                .filter(|job| capped || job.state == JobState::Retryable)
                .map(|job| job.queue.as_str()),
        );
        self.wake_dependents(dependents);
        Ok(report)
    }

    async fn promote_scheduled(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let queues = self.inner.driver.promote(PROMOTE_BATCH).await?;
            total += queues.len() as u64;
            self.wake_queues(queues.iter().map(String::as_str));
            if queues.len() < PROMOTE_BATCH as usize {
                return Ok(total);
            }
        }
    }

    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let Some(cancelled) = self.inner.driver.cancel(tenant, id).await? else {
            return Ok(None);
        };
        let job = cancelled.job;
        if cancelled.now {
            self.wake_finished(vec![id]);
            self.wake_dependents(cancelled.released);
        } else if job.state == JobState::Running {
            self.send(StoreEvent::CancelRequested { id });
        }
        Ok(Some(job))
    }

    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        self.inner.driver.get(tenant, id).await
    }

    async fn list(&self, tenant: &str, filter: &JobFilter) -> Result<Page, StoreError> {
        let limit = page_limit(filter);
        if !may_match(filter) {
            return Ok(Self::page(Vec::new(), limit, |job: &Job| job.id));
        }
        let rows = self.inner.driver.list(tenant, &page_filter(filter)).await?;
        Ok(Self::page(rows, limit, |job| job.id))
    }

    async fn list_summaries(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Page<JobSummary>, StoreError> {
        let limit = page_limit(filter);
        if !may_match(filter) {
            return Ok(Self::page(Vec::new(), limit, |job: &JobSummary| job.id));
        }
        let rows = self.inner.driver.list(tenant, &page_filter(filter)).await?;
        Ok(Self::page(rows, limit, |job| job.id))
    }

    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError> {
        self.inner.driver.job_state(tenant, id).await
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let deleted = self.inner.driver.prune(older_than, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        // Losing a race with an upload of the same bytes is harmless: the next prune sweeps.
        if let Err(e) = self.inner.driver.sweep_blobs().await {
            tracing::warn!(error = %e, "sweeping unused module bytes failed");
        }
        Ok(total)
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.inner.events.subscribe()
    }

    fn handoff(&self) -> Option<&Arc<Handoff>> {
        Some(&self.inner.handoff)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.driver.ping().await
    }

    async fn put_module(&self, module: NewModule) -> Result<PutModule, StoreError> {
        if hex::encode(Sha256::digest(&module.bytes)) != module.digest {
            return Err(StoreError::Invalid(format!(
                "digest {} is not the sha256 of the module bytes",
                module.digest
            )));
        }
        // The same bytes, kind and defaults again change nothing.
        let unchanged = |latest: &Module| {
            latest.digest == module.digest
                && latest.kind == module.kind
                && latest.limits == module.limits
        };
        self.inner.driver.put_module(&module, &unchanged).await
    }

    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError> {
        self.inner.driver.get_module(tenant, name).await
    }

    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError> {
        self.inner.driver.module_versions(tenant, name).await
    }

    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        self.inner.driver.list_modules(tenant).await
    }

    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.inner.driver.delete_module(tenant, name).await
    }

    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.driver.module_bytes(digest).await
    }

    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        self.inner.driver.count_jobs().await
    }

    async fn create_key(
        &self,
        tenant: &str,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<NewKey, StoreError> {
        let (id, key, hash, scopes) = keys::new_key(tenant, scopes)?;
        let row = KeyRow {
            tenant: tenant.to_owned(),
            hash,
            scopes: scopes.into_iter().map(str::to_owned).collect(),
        };
        self.inner.driver.insert_key(&id, name, &row).await?;
        Ok(NewKey { id, key })
    }

    async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret)) = keys::parse(key) else {
            return Ok(None);
        };
        let Some(row) = self.inner.driver.key(id).await? else {
            return Ok(None);
        };
        Ok(keys::principal(
            id,
            secret,
            row.tenant,
            &row.hash,
            &row.scopes,
        ))
    }

    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.driver.revoke_key(tenant, id).await
    }

    async fn module_settings(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<ModuleSettings, StoreError> {
        self.inner.driver.module_settings(tenant, name).await
    }

    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        self.inner.driver.allowed_hosts(tenant).await
    }

    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        self.inner
            .driver
            .set_allowed_hosts(tenant, name, hosts)
            .await
    }

    async fn set_module_config(
        &self,
        tenant: &str,
        name: &str,
        values: &std::collections::BTreeMap<String, String>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.inner
            .driver
            .set_module_config(tenant, name, values, secrets)
            .await
    }

    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.inner.driver.delete_module_settings(tenant, name).await
    }

    async fn retry(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let job = self.inner.driver.retry(tenant, id).await?;
        if let Some(job) = &job {
            self.send(StoreEvent::JobsAvailable {
                queue: job.queue.clone(),
            });
        }
        Ok(job)
    }

    async fn pause_queue(&self, tenant: &str, queue: &str) -> Result<bool, StoreError> {
        self.set_paused(tenant, queue, true).await
    }

    async fn resume_queue(&self, tenant: &str, queue: &str) -> Result<bool, StoreError> {
        self.set_paused(tenant, queue, false).await
    }

    async fn set_queue_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError> {
        self.set_limit(tenant, queue, max_running).await
    }

    async fn queues(&self, tenant: &str) -> Result<Vec<QueueInfo>, StoreError> {
        self.queue_infos(tenant).await
    }

    async fn has_work(
        &self,
        queues: &[String],
        horizon: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        self.work_left(queues, horizon).await
    }

    async fn put_schedule(&self, schedule: NewSchedule) -> Result<bool, StoreError> {
        let created = self.inner.driver.put_schedule(schedule).await?;
        self.send(StoreEvent::SchedulesChanged);
        Ok(created)
    }

    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.inner.driver.schedules(tenant, name).await
    }

    async fn delete_schedule(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
        let gone = self.inner.driver.delete_schedule(tenant, name).await?;
        if gone {
            self.send(StoreEvent::SchedulesChanged);
        }
        Ok(gone)
    }

    async fn due_schedules(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        self.inner.driver.due_schedules(now, limit).await
    }

    async fn next_schedule_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        self.inner.driver.next_schedule_at().await
    }

    async fn advance_schedule(&self, advance: ScheduleAdvance) -> Result<bool, StoreError> {
        // Error text a store would refuse (NUL) is made storable, as for every report.
        let advance = ScheduleAdvance {
            error: advance.error.map(|e| storable::storable(&e).into_owned()),
            ..advance
        };
        self.inner.driver.advance_schedule(advance).await
    }
}
