//! [`Store`]: the interface the API, the worker and the command line use.

use std::time::Duration;

use super::*;

/// The durable store behind wasmq. Implementations: [`postgres::PgStore`] (any number of
/// nodes) and [`sqlite::SqliteStore`] (one node, one file). All must pass the conformance
/// suite (`tests/src/conformance.rs`).
///
/// Used as `Arc<dyn Store>`. Every method is one transaction; batch methods take thousands
/// of items in one round trip.
#[async_trait::async_trait]
pub trait Store: TenantStore + Send + Sync + 'static {
    /// Stores `jobs` in one transaction and returns them in input order. A job with a future
    /// `run_at` is `scheduled`, any other `available`, except that a store with a
    /// [`handoff`](Store::handoff) may give a lone due job without a key straight to an
    /// idle worker of this process: it is then answered `running` (attempt 1, for that
    /// worker) or, if it was run before it was stored, with its first attempt's outcome
    /// (`completed`, `retryable`, `failed`). An idempotency key already stored for
    /// the tenant (or earlier in the same batch) returns that job with `duplicate: true`.
    /// Fails as a whole with [`StoreError::ModuleNotFound`] if a job names a module with no
    /// version (and no digest). Workers of queues that received available jobs are woken
    /// ([`StoreEvent::JobsAvailable`]). A job with [`NewJob::depends_on`] is `waiting`
    /// while one of them is unfinished, `cancelled` (`dependency_failed`) if one failed or
    /// was cancelled, else as above; a dependency on a job that is not the tenant's fails
    /// the batch with [`StoreError::Invalid`] (see [`super::deps`]).
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError>;

    /// Claims up to `limit` due jobs of `queue` (waiting, `run_at` passed) for `worker_id`,
    /// of `tenant` only or of every tenant, fairly between tenants: each tenant's jobs
    /// highest priority first, then earliest `run_at`, then lowest id, and the tenants'
    /// first jobs before any tenant's second (a tenant's priority never jumps another's
    /// jobs). Each becomes `running` with its attempt incremented, `started_at` now, its
    /// progress cleared and a lease of `lease`. Concurrent claimers never receive the same
    /// job. Returned in that order.
    async fn claim_for(
        &self,
        tenant: Option<&str>,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError>;

    /// [`Store::claim_for`] every tenant.
    async fn claim(
        &self,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        self.claim_for(None, queue, worker_id, limit, lease).await
    }

    /// Extends to now + `lease` the leases of the jobs in `ids` that `worker_id` still runs,
    /// and tells which of them a user asked to cancel and which are no longer this worker's.
    async fn heartbeat(
        &self,
        worker_id: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError>;

    /// Records finished attempts in one transaction. Item `i` of the answer says whether
    /// `items[i]` was applied: only a job still `running` at the reported attempt is, so an
    /// attempt that was rescued (and perhaps re-run elsewhere) cannot finish the job again;
    /// a job completes exactly once. Long-polls are woken ([`StoreEvent::JobsFinished`]) for
    /// jobs that finished for good. In the same transaction their waiting dependents are
    /// counted down (made due, and their queues woken, at none left) or cancelled down the
    /// chain.
    async fn finish(&self, items: Vec<Finish>) -> Result<Vec<bool>, StoreError>;

    /// `n` (≥ 1) fresh job ids, never drawn again: for child jobs, whose ids their guest
    /// is told before they are stored with its completion ([`ChildJob`](super::ChildJob)).
    async fn draw_ids(&self, n: usize) -> Result<Vec<i64>, StoreError>;

    /// The id of `tenant`'s stored job with idempotency key `key`.
    async fn job_id_by_key(&self, tenant: &str, key: &str) -> Result<Option<i64>, StoreError>;

    /// Records the progress of a running attempt; false if the job is not running at
    /// `attempt` any more.
    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: Progress,
    ) -> Result<bool, StoreError>;

    /// Takes back running jobs whose lease expired (their worker vanished): with attempts
    /// left they become `retryable` at once with a `lost` history entry; otherwise `failed`
    /// with error kind `lost`; if cancellation was requested, `cancelled`. Runs on one node
    /// at a time: a concurrent call returns `skipped`.
    async fn rescue(&self) -> Result<RescueReport, StoreError>;

    /// Makes `scheduled` and `retryable` jobs whose `run_at` passed `available` (so listings
    /// tell the truth) and wakes their queues' workers. Returns how many. Claiming does not
    /// depend on it: due waiting jobs are claimable in any of the three states.
    async fn promote_scheduled(&self) -> Result<u64, StoreError>;

    /// Cancels job `id` of `tenant`: a job not started becomes `cancelled` at once (error
    /// kind `cancelled`), and the jobs waiting for it too (`dependency_failed`); a running one gets `cancel_requested` and its worker is told
    /// ([`StoreEvent::CancelRequested`]); a finished one is left as is. Returns the job after
    /// the call, or `None` if the tenant has no such job.
    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError>;

    /// Job `id` of `tenant`, or `None` (also for another tenant's job).
    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError>;

    /// Jobs of `tenant` matching `filter`, newest first, keyset-paged by id. Reads whole
    /// rows (input, result and log too): for tools and tests; the API lists with
    /// [`Store::list_summaries`].
    async fn list(&self, tenant: &str, filter: &JobFilter) -> Result<Page, StoreError>;

    /// [`Store::list`] without reading the input, result, log and lease of each job.
    async fn list_summaries(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Page<JobSummary>, StoreError>;

    /// The state of job `id` of `tenant`, or `None`: a long-poll's cheap look before it
    /// reads the whole job once.
    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError>;

    /// Deletes jobs finished (completed, failed, cancelled) more than `older_than` ago, and
    /// module bytes nothing refers to any more. Returns how many jobs.
    async fn prune(&self, older_than: Duration) -> Result<u64, StoreError>;

    /// Events from every node sharing this store, from now on. A receiver that lags loses
    /// events (`RecvError::Lagged`): treat that like [`StoreEvent::Reconnected`].
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StoreEvent>;

    /// Where this process's idle workers register to be handed jobs enqueued through this
    /// store (see [`handoff`]); `None` if the store does not hand jobs off.
    fn handoff(&self) -> Option<&std::sync::Arc<handoff::Handoff>> {
        None
    }

    /// Whether the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores `module` as the tenant's next version of its name, unless the latest version
    /// has the same digest, kind and limits, which is returned unchanged.
    async fn put_module(&self, module: NewModule) -> Result<PutModule, StoreError>;

    /// The latest version of module `name`.
    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError>;

    /// Every version of module `name`, newest first (empty if none).
    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError>;

    /// The latest version of each module of `tenant`, by name.
    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError>;

    /// Deletes every version of module `name`; [`StoreError::NotFound`] if it has none.
    /// Jobs already enqueued keep their pinned digest and still run: the bytes are kept while
    /// an unfinished job refers to them (and removed by [`Store::prune`] afterwards).
    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError>;

    /// The bytes stored under `digest`, or `None`.
    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// How many jobs each queue holds in each state, across tenants (for metrics). Pairs
    /// with no job are left out.
    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError>;

    /// Creates an API key for `tenant` with `scopes` (at least one; [`StoreError::Invalid`]
    /// otherwise, or for a tenant that is not a slug: see [`keys::validate_tenant`]).
    /// Generate it with [`keys::generate`] and store only the id, tenant, `name`, scopes
    /// and hash. The answer carries the whole key, which is never stored.
    async fn create_key(
        &self,
        tenant: &str,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<NewKey, StoreError>;

    /// Who holds `key` (`wq_<id>_<secret>`): `None` if it is malformed, unknown, revoked, or
    /// its secret does not match. Find the row by id ([`keys::parse`]) and compare with
    /// [`keys::verify_secret`] (constant time).
    async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError>;

    /// Revokes key `id` of `tenant`: it no longer authenticates. False if the tenant has no
    /// such unrevoked key.
    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;

    // Module settings (allow-list and config), per tenant and module name, apart from
    // the versions. Drivers keep these in `<driver>/settings.rs`.

    /// The settings of module `name` (empty if none were ever set).
    async fn module_settings(&self, tenant: &str, name: &str)
    -> Result<ModuleSettings, StoreError>;

    /// The non-empty allow-lists of `tenant`'s modules, by module name.
    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError>;

    /// Replaces the allow-list of module `name` (validated and canonical).
    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError>;

    /// Replaces the config values and the sealed secrets of module `name`.
    async fn set_module_config(
        &self,
        tenant: &str,
        name: &str,
        values: &std::collections::BTreeMap<String, String>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), StoreError>;

    /// Forgets every setting of module `name` (when the module is deleted).
    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError>;

    /// Runs a `failed` or `cancelled` job again: `available` now, no attempts counted, its
    /// history kept. `None` if it is in another state or does not exist (tell them apart
    /// with [`Store::job_state`]).
    async fn retry(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError>;

    // Queue control: a pause is per tenant and queue (queue names are one namespace).

    /// Pauses `queue` for `tenant`: its jobs are still accepted, but from the commit on no
    /// node claims or is handed one of them; running ones finish. False if it was paused.
    async fn pause_queue(&self, tenant: &str, queue: &str) -> Result<bool, StoreError>;

    /// Resumes `queue` for `tenant` and wakes its workers on every node. False if it was
    /// not paused.
    async fn resume_queue(&self, tenant: &str, queue: &str) -> Result<bool, StoreError>;

    /// Sets (`Some`) or removes `tenant`'s limit of running jobs in `queue`, over all nodes:
    /// from the commit on, no claim takes the queue's running jobs of the tenant past it
    /// (jobs running beyond a lowered limit finish). Wakes the queue's workers everywhere.
    async fn set_queue_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError>;

    /// The queues of `tenant` with unfinished jobs, a pause or a limit, by name: counts of their
    /// unfinished jobs per state (finished ones are not counted: that would read them all).
    async fn queues(&self, tenant: &str) -> Result<Vec<QueueInfo>, StoreError>;

    /// Whether any job of `queues` (any tenant) is running, or waiting with its `run_at`
    /// at or before `horizon` in a queue its tenant has not paused: what a worker in burst
    /// mode still has to do.
    async fn has_work(
        &self,
        queues: &[String],
        horizon: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError>;

    // Schedules: rows and compare-and-set advances only; `crate::schedule` decides.

    /// Stores `schedule`, replacing one of the same tenant and name (its `last_*` kept,
    /// its revision bumped), and sends [`StoreEvent::SchedulesChanged`] to every node.
    /// True if it is new.
    async fn put_schedule(&self, schedule: NewSchedule) -> Result<bool, StoreError>;

    /// The schedules of `tenant` (only `name`, if given), by name.
    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule; false if `tenant` has none of that name.
    async fn delete_schedule(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;

    /// Unpaused schedules of every tenant whose next tick is at or before `now`, earliest
    /// first, at most `limit`.
    async fn due_schedules(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// The earliest next tick of any unpaused schedule.
    async fn next_schedule_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;

    /// Writes a tick's outcome if the schedule is still at the advance's revision and
    /// tick; false if another node (or a put) got there first.
    async fn advance_schedule(&self, advance: ScheduleAdvance) -> Result<bool, StoreError>;
}
