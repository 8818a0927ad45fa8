//! [`Driver`]: the storage primitives one backend offers the queue core ([`super::Queue`]).
//!
//! A driver writes and reads rows and tells the *other* nodes sharing its database what
//! happened (PostgreSQL: `pg_notify` inside the statement, tagged with the node's id so
//! its own listener drops it; SQLite has no other node). Every policy is the core's: the
//! hand-off and run-ahead, idempotency retries, key checks, the module no-op, wake-ups of
//! this process, the order and checking of claims, capping stored text. A driver is
//! handed text that is already storable and may trust it.
//!
//! Every driver passes the conformance suite (`tests/src/conformance.rs`) through the
//! core; the driver-only cases (notifications between nodes, SQLite's files) are in the
//! backends' own tests.

use std::time::Duration;

use super::deps::Released;
use super::rows::Listed;
use super::tenants::{QuotaChange, TenantRow, TenantUsage};
use super::{
    Enqueued, ErrorKind, Finish, Job, JobError, JobFilter, JobState, Module, ModuleSettings,
    NewJob, NewModule, NewSchedule, Outcome, Progress, PutModule, QueueLimit, Schedule,
    ScheduleAdvance, StoreError,
};

/// The row storage of one backend. Each method is one transaction.
#[async_trait::async_trait]
pub trait Driver:
    SettingsRows + ScheduleRows + ControlRows + TenantRows + Send + Sync + 'static
{
    /// Inserts `jobs` (at least one; `max_attempts` checked) in one transaction, in batch
    /// order, pinning a job without a digest to its module's latest version
    /// ([`StoreError::ModuleNotFound`] if it has none). A job whose key is stored for its
    /// tenant (or earlier in the batch) answers that job, with `duplicate`.
    async fn insert_batch(&self, jobs: Vec<NewJob>) -> Result<Inserted, StoreError>;

    /// The digest of the latest version of module `name` of `tenant`.
    async fn latest_digest(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError>;

    /// `n` fresh job ids, smallest first, never drawn again (not after a crash either): for
    /// jobs handed over before they are stored.
    async fn draw_ids(&self, n: usize) -> Result<Vec<i64>, StoreError>;

    /// The id of `tenant`'s stored job with idempotency key `key`.
    async fn job_id_by_key(&self, tenant: &str, key: &str) -> Result<Option<i64>, StoreError>;

    /// Inserts `job` (its id drawn with [`Driver::draw_ids`]) as its first attempt, running for
    /// its `worker_id` with a lease of `lease`, as a claim would have left it. No other
    /// node is told: no other worker should look for it.
    async fn insert_running(&self, job: &Job, lease: Duration) -> Result<Job, StoreError>;

    /// Inserts `job` with its first attempt's `report` applied: the row that
    /// [`Driver::insert_running`] and then [`Driver::finish`] would have left (its
    /// children too), in one commit. A released job (`Outcome::Release`) is stored `available`, attempt 0, and
    /// its queue's workers on other nodes are woken.
    async fn insert_finished(&self, job: &Job, report: &Finish) -> Result<Job, StoreError>;

    /// Marks up to `limit` (≥ 1) due waiting jobs of `queue` running for `worker`, in any
    /// order; no two claimers get the same job. Fair between tenants (of `tenant` only,
    /// when given): each tenant's jobs in its order (priority, run_at, id), the tenants'
    /// first ones before anyone's second, and so on. Never a job of a paused (tenant,
    /// queue) as of the statement, nor one that takes its tenant past its `max_running`
    /// (its row's, else `max_running` here, the server's default) or its queue past the
    /// tenant's limit of it, counting the running jobs of every node.
    async fn claim(
        &self,
        tenant: Option<&str>,
        queue: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
        max_running: Option<u64>,
    ) -> Result<Vec<Job>, StoreError>;

    /// Extends the leases of the jobs of `ids` that `worker` still runs: their ids, and
    /// whether a user asked to cancel each.
    async fn heartbeat(
        &self,
        worker: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<(i64, bool)>, StoreError>;

    /// Applies `items` (one per job) to jobs still running at the reported attempt, in one
    /// transaction: for each, what it became, or `None` if it was refused; and the jobs
    /// finished for good release or cancel their dependents in the same transaction, and
    /// the completed ones insert their children (telling other nodes of their queues).
    async fn finish(&self, items: Vec<Finish>) -> Result<Finished, StoreError>;

    /// Records the progress of job `id` while it runs at `attempt`.
    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: &Progress,
    ) -> Result<bool, StoreError>;

    /// Takes back running jobs whose lease expired: cancelled if a cancel was requested,
    /// `retryable` (now) while attempts remain, else `failed`; each error (`lost`:
    /// [`super::LOST_MESSAGE`], or [`super::LOST_CANCELLED_MESSAGE`]) appended to the
    /// history; the dependents of failed and cancelled ones cancelled. `None`: another
    /// node is rescuing.
    async fn rescue(&self) -> Result<Option<(Vec<Rescued>, Released)>, StoreError>;

    /// Makes up to `limit` due `scheduled`/`retryable` jobs `available`: the queue of each.
    async fn promote(&self, limit: u32) -> Result<Vec<String>, StoreError>;

    /// Cancels job `id` of `tenant` (not started: `cancelled`, with its dependents down the
    /// chain; running: `cancel_requested`; finished: unchanged): the job after the call,
    /// and whether this call cancelled it.
    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Cancelled>, StoreError>;

    /// Job `id` of `tenant`.
    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError>;

    /// Up to `filter.limit` jobs of `tenant` matching `filter`, by id descending, whole or
    /// as summaries ([`Listed`]); the core asks for one row more than a page holds.
    async fn list<T: Listed>(&self, tenant: &str, filter: &JobFilter)
    -> Result<Vec<T>, StoreError>;

    /// The state of job `id` of `tenant`.
    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError>;

    /// Deletes up to `limit` jobs finished more than `older_than` ago: how many.
    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError>;

    /// Deletes module bytes no version and no unfinished job refers to.
    async fn sweep_blobs(&self) -> Result<(), StoreError>;

    /// How many jobs each queue holds in each state (pairs with none left out).
    async fn count_jobs(&self) -> Result<Vec<super::JobCount>, StoreError>;

    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores `module` (its digest checked) as the next version of its name, in one
    /// transaction that holds the name: unless `unchanged(latest)`, which is returned.
    async fn put_module(
        &self,
        module: &NewModule,
        unchanged: &(dyn for<'m> Fn(&'m Module) -> bool + Send + Sync),
    ) -> Result<PutModule, StoreError>;

    /// The latest version of module `name`.
    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError>;

    /// Every version of module `name`, newest first.
    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError>;

    /// The latest version of each module of `tenant`, by name.
    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError>;

    /// Deletes every version of module `name` and the bytes nothing else refers to;
    /// [`StoreError::NotFound`] if it has none.
    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError>;

    /// The bytes stored under `digest`.
    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Stores a key row (only the secret's hash).
    async fn insert_key(
        &self,
        id: &str,
        name: Option<&str>,
        key: &KeyRow,
    ) -> Result<(), StoreError>;

    /// The unrevoked key row of `id`.
    async fn key(&self, id: &str) -> Result<Option<KeyRow>, StoreError>;

    /// Revokes key `id` of `tenant`; false if it has no such unrevoked key.
    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError>;
}

/// Module settings rows (allow-list and config), per tenant and module name, apart from the
/// versions: implemented in each driver's `settings.rs`.
#[async_trait::async_trait]
pub trait SettingsRows: Send + Sync {
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
}

/// Schedule rows and their compare-and-set advances: implemented in each driver's
/// `schedules.rs`; the core adds this process's wake-ups.
#[async_trait::async_trait]
pub trait ScheduleRows: Send + Sync {
    /// Upserts a schedule row (revision 1 when new, else bumped; `last_*` kept) and tells
    /// the other nodes; true if it is new.
    async fn put_schedule(&self, schedule: NewSchedule) -> Result<bool, StoreError>;

    /// The schedule rows of `tenant` (only `name`, if given) with their last job's state.
    async fn schedules(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// Deletes a schedule row and tells the other nodes; false if there was none.
    async fn delete_schedule(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;

    /// Unpaused rows due at `now`, earliest first, at most `limit`.
    async fn due_schedules(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError>;

    /// The earliest next tick of any unpaused row.
    async fn next_schedule_at(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError>;

    /// The compare-and-set advance of a row (see [`crate::queue::Store::advance_schedule`]).
    async fn advance_schedule(&self, advance: ScheduleAdvance) -> Result<bool, StoreError>;
}

/// Tenant rows and the counts their quotas are checked against: implemented in each
/// driver's `tenants.rs`; the core checks the values, the API enforces.
#[async_trait::async_trait]
pub trait TenantRows: Send + Sync {
    /// The row of `tenant`.
    async fn tenant_row(&self, tenant: &str) -> Result<Option<TenantRow>, StoreError>;

    /// Upserts the row of `tenant` with the quotas `change` touches, in one statement.
    async fn put_tenant_row(
        &self,
        tenant: &str,
        change: &QuotaChange,
    ) -> Result<TenantRow, StoreError>;

    /// The tenants whose row sets `max_running`.
    async fn capped_tenants(&self) -> Result<Vec<String>, StoreError>;

    /// Exact counts of what `tenant` uses.
    async fn count_tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError>;

    /// The unfinished jobs of `tenant`, counting at most `up_to` (the list index's
    /// ranges of the unfinished states, stopped after `up_to` entries).
    async fn count_unfinished_up_to(&self, tenant: &str, up_to: u64) -> Result<u64, StoreError>;

    /// See [`super::TenantStore::keys_with_jobs`].
    async fn count_keys_with_jobs(
        &self,
        tenant: &str,
        idempotency_keys: &[String],
        coalesce_keys: &[String],
    ) -> Result<u64, StoreError>;

    /// See [`super::TenantStore::module_bytes_used`].
    async fn sum_module_bytes(&self, tenant: &str, digest: &str)
    -> Result<(u64, bool), StoreError>;
}

/// The answer to [`Driver::insert_batch`].
#[derive(Debug)]
pub enum Inserted {
    /// Stored (or found by key), in batch order.
    Done(Vec<Enqueued>),
    /// A row lost a race with a concurrent insert of its key and nothing was written: the
    /// batch back, for the core to try again.
    Raced(Vec<NewJob>),
}

/// What a finish report made of its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The job's state now.
    pub state: JobState,
    /// Its queue.
    pub queue: String,
}

/// The answer to [`Driver::finish`].
#[derive(Debug, Default)]
pub struct Finished {
    /// Per report, what it made of its job (`None`: refused).
    pub applied: Vec<Option<Applied>>,
    /// What the jobs finished for good did to their dependents.
    pub released: Released,
}

/// The answer to [`Driver::cancel`].
#[derive(Debug)]
pub struct Cancelled {
    /// The job after the call.
    pub job: Job,
    /// Whether this call cancelled it.
    pub now: bool,
    /// Its dependents cancelled with it.
    pub released: Released,
}

/// A job a rescue took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescued {
    /// The job.
    pub id: i64,
    /// Its state now: `retryable`, `failed` or `cancelled`.
    pub state: JobState,
    /// Its queue.
    pub queue: String,
    /// The worker that held it, for the operator's log.
    pub worker: Option<String>,
}

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    /// The owner.
    pub tenant: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Scope names.
    pub scopes: Vec<String>,
}

/// The columns of a [`JobSummary`]: a listing selects only these.
pub(crate) const SUMMARY_COLUMNS: &str = "id, tenant, module, digest, queue, priority, state, \
     run_at, attempt, max_attempts, limits, idempotency_key, progress, error, usage, history, \
     created_at, started_at, finished_at, cancel_requested, depends_on, dependents, parent_id, depth";

/// An outcome as both stores write it: the job's next state, and the error it records
/// (appended to the history too).
pub(crate) fn outcome_columns(outcome: &Outcome) -> (JobState, Option<JobError>) {
    match outcome {
        Outcome::Complete { .. } => (JobState::Completed, None),
        Outcome::Retry { error, .. } => (JobState::Retryable, Some(error.clone())),
        Outcome::Fail { error } => (JobState::Failed, Some(error.clone())),
        Outcome::Release => (JobState::Available, None),
        Outcome::Cancelled => (
            JobState::Cancelled,
            Some(JobError::new(
                ErrorKind::Cancelled,
                "cancelled while running",
            )),
        ),
    }
}

/// The result bytes and retry time an outcome carries.
pub(crate) fn outcome_values(
    outcome: &Outcome,
) -> (Option<&[u8]>, Option<chrono::DateTime<chrono::Utc>>) {
    match outcome {
        Outcome::Complete { result } => (Some(result.as_slice()), None),
        Outcome::Retry { retry_at, .. } => (None, Some(*retry_at)),
        _ => (None, None),
    }
}

/// The error of a job cancelled before it ran.
pub(crate) fn cancelled_before_it_ran() -> JobError {
    JobError::new(ErrorKind::Cancelled, "cancelled before it ran")
}

/// A stored state name, read back.
pub(crate) fn decode_state(state: Option<String>) -> Result<Option<JobState>, StoreError> {
    state
        .map(|s| s.parse().map_err(|e| decode_err("state", e)))
        .transpose()
}

/// A sqlx error as a domain error, for both drivers; `classify` says what the database's
/// own codes mean where the kinds sqlx knows do not (`None`: nothing special). The detail
/// of unexpected ones goes to the log, never into the answer.
pub(crate) fn sqlx_err(
    e: sqlx::Error,
    classify: fn(&dyn sqlx::error::DatabaseError) -> Option<StoreError>,
) -> StoreError {
    use sqlx::error::ErrorKind as Kind;
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::Tls(_) => StoreError::Unavailable("TLS failure".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store was closed".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database connection crashed".into())
        }
        sqlx::Error::Database(db) => classify(db.as_ref()).unwrap_or_else(|| match db.kind() {
            Kind::UniqueViolation => StoreError::Conflict("it already exists".into()),
            Kind::ForeignKeyViolation => StoreError::Conflict(
                "it refers to something deleted at the same time; try again".into(),
            ),
            Kind::CheckViolation | Kind::NotNullViolation => {
                tracing::warn!(error = %e, "store rejected a value");
                StoreError::Invalid("a value is out of range".into())
            }
            _ => {
                let code = db.code().unwrap_or_default();
                tracing::error!(error = %e, "database error");
                StoreError::Database(format!("an internal database error occurred ({code})"))
            }
        }),
        _ => {
            tracing::error!(error = %e, "database error");
            StoreError::Database("an internal database error occurred".into())
        }
    }
}

/// A row value a backend could not decode: logged in full, reported without detail.
pub(crate) fn decode_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    tracing::error!(error = %e, what, "undecodable row");
    StoreError::Database(format!("a stored {what} could not be read"))
}

/// Queue control rows: retries of finished jobs, pauses, counts and burst's question;
/// implemented in each driver's `control.rs`.
#[async_trait::async_trait]
pub trait ControlRows: Send + Sync {
    /// Sets a `failed` or `cancelled` job `available` now with no attempts counted (its
    /// history and log kept, its last attempt's traces cleared) and wakes its queue on the
    /// other nodes; `None` if it is in no such state.
    async fn retry(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError>;

    /// Pauses (`paused`) or resumes `queue` for `tenant` and tells the other nodes; false
    /// if it already was so.
    async fn set_paused(&self, tenant: &str, queue: &str, paused: bool)
    -> Result<bool, StoreError>;

    /// The queues paused by `tenant`, or with `None` by any tenant, each once, by name.
    async fn paused_queues(&self, tenant: Option<&str>) -> Result<Vec<String>, StoreError>;

    /// Sets (`Some`) or removes `tenant`'s limit of running jobs in `queue` and tells the
    /// other nodes (as a pause change: they read the limits again and claim).
    async fn set_queue_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError>;

    /// The queue limits of `tenant`, or with `None` of every tenant.
    async fn queue_limits(&self, tenant: Option<&str>) -> Result<Vec<QueueLimit>, StoreError>;

    /// How many unfinished jobs `tenant` has per queue and state (pairs with none left out).
    async fn count_unfinished(&self, tenant: &str) -> Result<Vec<super::JobCount>, StoreError>;

    /// See [`crate::queue::Store::has_work`].
    async fn has_work(
        &self,
        queues: &[String],
        horizon: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError>;
}
