//! The job store: enqueue, claim, heartbeat, finish, rescue, cancel, list, prune, and the
//! module registry the jobs run.
//!
//! Everything durable goes through the [`Store`] trait, a narrow, backend-neutral interface
//! (River's driver interface is the model). [`postgres::PgStore`] implements it on
//! PostgreSQL, [`sqlite::SqliteStore`] in one embedded SQLite file; every implementation
//! must pass the conformance suite in `tests/src/conformance.rs`, which is the executable
//! definition of the semantics written down here.
//!
//! Nothing in this module knows about WebAssembly execution: a job is bytes in, bytes out,
//! plus the bookkeeping a user sees (state, attempts, error, usage, log, history).
//!
//! # A job's life
//!
//! ```text
//!  enqueue ──► scheduled ──(run_at passes)──► available ──claim──► running
//!                                               ▲                    │
//!       retryable ◄──── Retry / lost lease ─────┼────────────────────┤
//!           └──────(run_at passes)──────────────┘                    │
//!                                   completed ◄── Complete ──────────┤
//!                                   failed    ◄── Fail / exhausted ──┤
//!                                   cancelled ◄── Cancelled ─────────┘
//! ```
//!
//! Waiting jobs (`scheduled`, `available`, `retryable`) can be cancelled at once; a running
//! job's cancellation is *requested* and reported to its worker by [`Store::heartbeat`] and
//! [`StoreEvent::CancelRequested`].

pub mod handoff;
pub mod keys;
pub mod postgres;
pub mod sqlite;

pub use keys::{NewKey, Principal, Scope};

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The tenant used when none is given.
pub const DEFAULT_TENANT: &str = "default";
/// The queue used when none is given.
pub const DEFAULT_QUEUE: &str = "default";
/// The number of attempts a job gets when none is given.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where a job is in its life. Stored as the lower-case name ([`JobState::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its `run_at`, which is in the future.
    Scheduled,
    /// Ready to be claimed by a worker.
    Available,
    /// Claimed by a worker, which holds a lease on it.
    Running,
    /// An attempt failed and attempts remain; waiting for its backoff (`run_at`).
    Retryable,
    /// Finished successfully. Happens at most once per job.
    Completed,
    /// Failed fatally, or every attempt failed.
    Failed,
    /// Cancelled by a user before or while it ran.
    Cancelled,
}

impl JobState {
    /// Every state, in life order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The stored and displayed name: `scheduled`, `available`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job is finished for good (`completed`, `failed` or `cancelled`).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }

    /// Whether the job waits to be claimed (`scheduled`, `available` or `retryable`).
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            JobState::Scheduled | JobState::Available | JobState::Retryable
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("`{s}` is not a job state")))
    }
}

/// Why an attempt or a job failed. Serialized as the snake_case name (`out_of_fuel`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The fuel limit (Wasm instructions) was used up.
    OutOfFuel,
    /// The attempt ran longer than its wall-clock timeout.
    Timeout,
    /// The instance needed more linear memory than allowed.
    MemoryLimit,
    /// The result was larger than allowed.
    OutputLimit,
    /// The guest trapped (panic, `unreachable`, …).
    Trap,
    /// The guest returned an error (`retry` or `fatal`).
    TaskError,
    /// The worker holding the job vanished; set by [`Store::rescue`].
    Lost,
    /// The job's pinned module bytes are gone.
    ModuleMissing,
    /// The job was cancelled.
    Cancelled,
}

impl ErrorKind {
    /// The stored name: `out_of_fuel`, `timeout`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::Trap => "trap",
            ErrorKind::TaskError => "task_error",
            ErrorKind::Lost => "lost",
            ErrorKind::ModuleMissing => "module_missing",
            ErrorKind::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of a failed attempt or job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// What happened, for a person.
    pub message: String,
}

impl JobError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            message: message.into(),
        }
    }
}

/// One failed, lost or cancelled attempt, as kept in [`Job::history`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// When the failure was recorded.
    pub at: DateTime<Utc>,
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

/// Resource limits of an attempt. `None` means "not set here": the worker takes the
/// module's default, then the server's maximum. Stored as JSON without the unset fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Limits {
    /// Wasm fuel (instructions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// Wall clock of one attempt, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Linear memory of the instance, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Bytes of result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_bytes: Option<u64>,
    /// Bytes of log kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
}

/// What the last attempt reported about its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// 0–100.
    pub percent: u8,
    /// A free-form note.
    #[serde(default)]
    pub note: Option<String>,
}

/// Resources the last attempt used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Peak linear memory, in bytes.
    pub memory_peak_bytes: u64,
    /// Wall clock, in milliseconds.
    pub duration_ms: u64,
    /// Outbound HTTP requests made (refused ones included); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub http_requests: u64,
    /// Bytes of outbound response bodies read; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub http_bytes_in: u64,
    /// Bytes of outbound request bodies sent; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub http_bytes_out: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Unique, increasing with enqueue order.
    pub id: i64,
    /// The tenant that owns it; jobs are invisible across tenants.
    pub tenant: String,
    /// The module name it was enqueued for.
    pub module: String,
    /// The module version's digest (sha256, hex) pinned at enqueue; what the worker runs.
    pub digest: String,
    /// The queue it waits in.
    pub queue: String,
    /// Higher runs first.
    pub priority: i16,
    /// The input bytes.
    pub input: Vec<u8>,
    /// Where it is in its life.
    pub state: JobState,
    /// When it may run (next).
    pub run_at: DateTime<Utc>,
    /// Attempts started so far (the current one while running).
    pub attempt: u32,
    /// Attempts it may have in total.
    pub max_attempts: u32,
    /// Per-job limit overrides.
    pub limits: Limits,
    /// The idempotency key it was enqueued with.
    pub idempotency_key: Option<String>,
    /// Progress reported by the current or last attempt.
    pub progress: Option<Progress>,
    /// The result of the completed job.
    pub result: Option<Vec<u8>>,
    /// The last error (kept while retryable; the final one once failed or cancelled).
    pub error: Option<JobError>,
    /// Resources used by the last finished attempt.
    pub usage: Option<Usage>,
    /// The log of the last finished attempt (truncated to its cap).
    pub log: String,
    /// Bytes of log dropped by the last finished attempt.
    pub log_dropped: u64,
    /// Every failed, lost or cancelled attempt, oldest first.
    pub history: Vec<AttemptRecord>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished for good.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker holding it while running.
    pub worker_id: Option<String>,
    /// When the running worker's lease expires.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// A user asked to cancel it while it ran.
    pub cancel_requested: bool,
}

/// A job as a listing shows it ([`Store::list_summaries`]): every column but the input,
/// the result, the log and the lease, which a listing of up to 1,000 rows must not read.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSummary {
    /// Unique, increasing with enqueue order.
    pub id: i64,
    /// The tenant that owns it.
    pub tenant: String,
    /// The module name it was enqueued for.
    pub module: String,
    /// The module version's digest pinned at enqueue.
    pub digest: String,
    /// The queue it waits in.
    pub queue: String,
    /// Higher runs first.
    pub priority: i16,
    /// Where it is in its life.
    pub state: JobState,
    /// When it may run (next).
    pub run_at: DateTime<Utc>,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts it may have in total.
    pub max_attempts: u32,
    /// Per-job limit overrides.
    pub limits: Limits,
    /// The idempotency key it was enqueued with.
    pub idempotency_key: Option<String>,
    /// Progress reported by the current or last attempt.
    pub progress: Option<Progress>,
    /// The last error.
    pub error: Option<JobError>,
    /// Resources used by the last finished attempt.
    pub usage: Option<Usage>,
    /// Failed, lost or cancelled attempts, oldest first (bounded: [`MAX_HISTORY`]).
    pub history: Vec<AttemptRecord>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished for good.
    pub finished_at: Option<DateTime<Utc>>,
    /// A user asked to cancel it while it ran.
    pub cancel_requested: bool,
}

/// What a [`Job`] has beyond its [`JobSummary`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobBody {
    /// The input bytes.
    pub input: Vec<u8>,
    /// The result of the completed job.
    pub result: Option<Vec<u8>>,
    /// The log of the last finished attempt.
    pub log: String,
    /// Bytes of log dropped by the last finished attempt.
    pub log_dropped: u64,
    /// The worker holding it while running.
    pub worker_id: Option<String>,
    /// When the running worker's lease expires.
    pub lease_expires_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The job made of its listed columns and the rest.
    pub fn from_parts(summary: JobSummary, body: JobBody) -> Job {
        let JobSummary {
            id,
            tenant,
            module,
            digest,
            queue,
            priority,
            state,
            run_at,
            attempt,
            max_attempts,
            limits,
            idempotency_key,
            progress,
            error,
            usage,
            history,
            created_at,
            started_at,
            finished_at,
            cancel_requested,
        } = summary;
        let JobBody {
            input,
            result,
            log,
            log_dropped,
            worker_id,
            lease_expires_at,
        } = body;
        Job {
            id,
            tenant,
            module,
            digest,
            queue,
            priority,
            input,
            state,
            run_at,
            attempt,
            max_attempts,
            limits,
            idempotency_key,
            progress,
            result,
            error,
            usage,
            log,
            log_dropped,
            history,
            created_at,
            started_at,
            finished_at,
            worker_id,
            lease_expires_at,
            cancel_requested,
        }
    }

    /// The job split into what a listing shows and the rest.
    pub fn into_parts(self) -> (JobSummary, JobBody) {
        let body = JobBody {
            input: self.input,
            result: self.result,
            log: self.log,
            log_dropped: self.log_dropped,
            worker_id: self.worker_id,
            lease_expires_at: self.lease_expires_at,
        };
        let summary = JobSummary {
            id: self.id,
            tenant: self.tenant,
            module: self.module,
            digest: self.digest,
            queue: self.queue,
            priority: self.priority,
            state: self.state,
            run_at: self.run_at,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            limits: self.limits,
            idempotency_key: self.idempotency_key,
            progress: self.progress,
            error: self.error,
            usage: self.usage,
            history: self.history,
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            cancel_requested: self.cancel_requested,
        };
        (summary, body)
    }

    /// The job `new` became when it was just stored: what the store chose (id, pinned
    /// digest, state, run time, creation time) and the rest as enqueued, with no attempt
    /// yet. Lets a store answer an enqueue without reading every column back.
    pub fn just_enqueued(
        new: NewJob,
        id: i64,
        digest: String,
        state: JobState,
        run_at: DateTime<Utc>,
        created_at: DateTime<Utc>,
    ) -> Job {
        Job {
            id,
            tenant: new.tenant,
            module: new.module,
            digest,
            queue: new.queue,
            priority: new.priority,
            input: new.input,
            state,
            run_at,
            attempt: 0,
            max_attempts: new.max_attempts,
            limits: new.limits,
            idempotency_key: new.idempotency_key,
            progress: None,
            result: None,
            error: None,
            usage: None,
            log: String::new(),
            log_dropped: 0,
            history: Vec::new(),
            created_at,
            started_at: None,
            finished_at: None,
            worker_id: None,
            lease_expires_at: None,
            cancel_requested: false,
        }
    }
}

/// A job to enqueue. Build with [`NewJob::new`] and set what differs from the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// Owner [`DEFAULT_TENANT`].
    pub tenant: String,
    /// The module name to run.
    pub module: String,
    /// The module digest to pin. `None` pins the module's latest version at insert time,
    /// and enqueueing fails with [`StoreError::ModuleNotFound`] if the module has none.
    /// A given digest is taken as is (the caller resolved it).
    pub digest: Option<String>,
    /// [`DEFAULT_QUEUE`].
    pub queue: String,
    /// Higher runs first [0].
    pub priority: i16,
    /// The input bytes.
    pub input: Vec<u8>,
    /// When to run; `None` (or a past time) means now. A future time makes it `scheduled`.
    pub run_at: Option<DateTime<Utc>>,
    /// Attempts it may have [`DEFAULT_MAX_ATTEMPTS`]; at least 1.
    pub max_attempts: u32,
    /// Per-job limit overrides (validated by the caller against the server maximums).
    pub limits: Limits,
    /// Enqueueing a key that a stored job of the same tenant already has returns that job
    /// instead (see [`Enqueued::duplicate`]); the first of several in one batch wins.
    pub idempotency_key: Option<String>,
    /// The job must be stored before its first attempt starts, so it is never handed
    /// off (run ahead of its insert): its module may reach the network (an allow-list),
    /// and an attempt of a job that was never stored must have had no effect.
    pub stored_first: bool,
}

impl NewJob {
    /// A job for `module` with `input` and every default: tenant and queue `default`,
    /// priority 0, now, 3 attempts, no limit overrides, no idempotency key.
    pub fn new(module: impl Into<String>, input: impl Into<Vec<u8>>) -> Self {
        NewJob {
            tenant: DEFAULT_TENANT.to_owned(),
            module: module.into(),
            digest: None,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: 0,
            input: input.into(),
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            limits: Limits::default(),
            idempotency_key: None,
            stored_first: false,
        }
    }
}

/// The answer to one [`NewJob`].
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    /// The stored job: the new one, or the existing one with the same idempotency key.
    pub job: Job,
    /// True when no job was created because of the idempotency key.
    pub duplicate: bool,
}

/// How an attempt ended, as reported by a worker to [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job completed with `result`: state `completed`, finished for good.
    Complete {
        /// The result bytes.
        result: Vec<u8>,
    },
    /// The attempt failed and the job should run again at `retry_at`: state `retryable`,
    /// `error` kept as the job's last error and appended to its history. The worker decides
    /// whether attempts remain (see [`backoff`]); it reports [`Outcome::Fail`] otherwise.
    Retry {
        /// Why the attempt failed.
        error: JobError,
        /// When to run the next attempt.
        retry_at: DateTime<Utc>,
    },
    /// The job failed for good: state `failed`, `error` recorded and appended to history.
    Fail {
        /// Why it failed.
        error: JobError,
    },
    /// The worker gives the job back unrun (it is shutting down): state `available` at
    /// once, the attempt not counted, so another worker takes it straight away.
    Release,
    /// The attempt was interrupted because a user cancelled it: state `cancelled`, error
    /// kind `cancelled`, appended to history.
    Cancelled,
}

/// The report of one finished attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The job.
    pub id: i64,
    /// The attempt being finished. Applied only if the job is still `running` at this
    /// attempt; otherwise (it was rescued, and maybe re-claimed) the report is refused.
    pub attempt: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// What it used.
    pub usage: Usage,
    /// Its log (replaces the job's log).
    pub log: String,
    /// Bytes of log it dropped.
    pub log_dropped: u64,
    /// Its last progress, if it reported any (otherwise the stored one is kept).
    pub progress: Option<Progress>,
}

impl Finish {
    /// A report of `outcome` for attempt `attempt` of job `id`, with no usage, log or progress.
    pub fn new(id: i64, attempt: u32, outcome: Outcome) -> Self {
        Finish {
            id,
            attempt,
            outcome,
            usage: Usage::default(),
            log: String::new(),
            log_dropped: 0,
            progress: None,
        }
    }
}

/// Most entries a job's [`Job::history`] keeps: the first failure (often the cause) and
/// the latest `MAX_HISTORY - 1`. A job may have up to 100 attempts, and each entry holds
/// a message of up to [`crate::text::MAX_MESSAGE_BYTES`]; the attempt numbers of the
/// entries kept show which were dropped.
pub const MAX_HISTORY: usize = 20;

/// `error` as a store writes it: its message cut to [`crate::text::MAX_MESSAGE_BYTES`]
/// whatever the worker sent, so no guest can make a row (or a listing) too big.
pub(crate) fn bounded(error: &JobError) -> JobError {
    let message = storable(&error.message).into_owned();
    JobError::new(error.kind, crate::text::cap_message(message))
}

/// `text` with each NUL replaced by U+FFFD: PostgreSQL's text and JSON cannot hold a NUL
/// and refuse the whole statement, and a guest's log or message may carry one. Both
/// stores write the same, so a job reads back alike on either.
pub(crate) fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// `progress` with a storable note ([`storable`]).
pub(crate) fn storable_progress(progress: &Progress) -> Progress {
    Progress {
        percent: progress.percent,
        note: progress.note.as_deref().map(|n| storable(n).into_owned()),
    }
}

/// The columns of a [`JobSummary`]: a listing selects only these.
pub(crate) const SUMMARY_COLUMNS: &str = "id, tenant, module, digest, queue, priority, state, \
     run_at, attempt, max_attempts, limits, idempotency_key, progress, error, usage, history, \
     created_at, started_at, finished_at, cancel_requested";

/// A row of a listing: a whole [`Job`] or a [`JobSummary`].
pub(crate) trait Listed {
    /// Its id, the listing's cursor.
    fn id(&self) -> i64;
}

impl Listed for Job {
    fn id(&self) -> i64 {
        self.id
    }
}

impl Listed for JobSummary {
    fn id(&self) -> i64 {
        self.id
    }
}

/// The length of a page of `filter`'s listing: 1..=1000, 0 meaning 100.
pub(crate) fn page_limit(filter: &JobFilter) -> u32 {
    match filter.limit {
        0 => 100,
        n => n.min(1000),
    }
}

/// One page from the `rows` of a listing read with one more than `limit` (which tells
/// that more follow), each decoded with `decode`.
pub(crate) fn decode_page<R, T: Listed>(
    rows: &[R],
    limit: u32,
    decode: impl Fn(&R) -> Result<T, StoreError>,
) -> Result<Page<T>, StoreError> {
    let mut jobs = rows.iter().map(decode).collect::<Result<Vec<T>, _>>()?;
    let next_cursor = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(Listed::id)
    } else {
        None
    };
    Ok(Page { jobs, next_cursor })
}

/// A stored state name, read back.
pub(crate) fn decode_state(state: Option<String>) -> Result<Option<JobState>, StoreError> {
    state
        .map(|s| s.parse().map_err(|e| decode_err("state", e)))
        .transpose()
}

/// The message of a job whose lease expired ([`Store::rescue`]): for the tenant, so it
/// names no worker (host names and pids are the operator's, in the log).
pub const LOST_MESSAGE: &str =
    "its worker stopped renewing its lease (crashed or lost the database)";
/// The message of a lost job whose cancellation had been requested.
pub const LOST_CANCELLED_MESSAGE: &str = "cancelled; its worker vanished";

/// The workers whose jobs a rescue took back, for the operator's log: the tenants'
/// messages name none ([`LOST_MESSAGE`]).
#[derive(Default)]
pub(crate) struct LostWorkers(std::collections::BTreeMap<String, Vec<i64>>);

impl LostWorkers {
    /// Job `id` was held by `worker`.
    pub(crate) fn add(&mut self, worker: Option<String>, id: i64) {
        self.0
            .entry(worker.unwrap_or_else(|| "?".into()))
            .or_default()
            .push(id);
    }

    /// One line per worker, with (some of) its jobs.
    pub(crate) fn log(&self) {
        for (worker, ids) in &self.0 {
            tracing::warn!(
                worker = %worker,
                jobs = ids.len(),
                ids = ?&ids[..ids.len().min(20)],
                "took back the jobs of a worker that stopped renewing its leases"
            );
        }
    }
}

impl Finish {
    /// What becomes of a report the store refused (a value it cannot hold): the job fails
    /// for good, with no result, log or progress, and a message that says why (the
    /// store's own words are for the log).
    pub fn refused(self) -> Finish {
        let kind = match &self.outcome {
            Outcome::Complete { .. } => ErrorKind::OutputLimit,
            Outcome::Retry { error, .. } | Outcome::Fail { error } => error.kind,
            Outcome::Cancelled => ErrorKind::Cancelled,
            Outcome::Release => ErrorKind::Trap,
        };
        let error = JobError::new(
            kind,
            "the attempt's report could not be stored (the store refused its result, log \
             or error); the job failed without another attempt",
        );
        Finish {
            usage: self.usage,
            ..Finish::new(self.id, self.attempt, Outcome::Fail { error })
        }
    }
}

/// Refuses a batch with a job that may never run (`max_attempts` 0).
pub(crate) fn check_attempts(jobs: &[NewJob]) -> Result<(), StoreError> {
    match jobs.iter().find(|job| job.max_attempts == 0) {
        Some(job) => Err(StoreError::Invalid(format!(
            "a job of module `{}` has max_attempts 0; it needs at least 1",
            job.module
        ))),
        None => Ok(()),
    }
}

/// A row value a backend could not decode: logged in full, reported without detail.
pub(crate) fn decode_err(what: &str, e: impl std::fmt::Display) -> StoreError {
    tracing::error!(error = %e, what, "undecodable row");
    StoreError::Database(format!("a stored {what} could not be read"))
}

/// Puts claimed jobs in claim order: priority (highest first), then run_at, then id.
/// Shared by the backends, whose `UPDATE … RETURNING` does not keep the order.
pub(crate) fn sort_claimed(jobs: &mut [Job]) {
    jobs.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.id.cmp(&b.id))
    });
}

impl Heartbeat {
    /// The answer for a heartbeat of `asked`, given the `(id, cancel_requested)` of the
    /// jobs the worker still holds: the rest were taken away (`lost`).
    pub(crate) fn from_held(asked: &[i64], held: impl IntoIterator<Item = (i64, bool)>) -> Self {
        let mut still = std::collections::HashSet::new();
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
}

/// The answer to [`Store::heartbeat`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// Jobs whose lease was extended and whose cancellation a user requested: stop them and
    /// report [`Outcome::Cancelled`].
    pub cancel_requested: Vec<i64>,
    /// Jobs this worker no longer holds (rescued after the lease expired, or finished): stop
    /// them; their reports would be refused.
    pub lost: Vec<i64>,
}

/// What [`Store::rescue`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Another node was rescuing at the same time, so nothing was done.
    pub skipped: bool,
    /// Lost jobs with attempts left, now `retryable` (run at once).
    pub retried: Vec<i64>,
    /// Lost jobs with no attempt left, now `failed` with error kind `lost`.
    pub failed: Vec<i64>,
    /// Lost jobs whose cancellation had been requested, now `cancelled`.
    pub cancelled: Vec<i64>,
}

/// Which jobs [`Store::list`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this module name.
    pub module: Option<String>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// At most this many (clamped to 1..=1000; 0 means 100).
    pub limit: u32,
    /// Only jobs with an id below this: the `next_cursor` of the previous page.
    pub cursor: Option<i64>,
}

/// One page of [`Store::list`] (whole jobs) or [`Store::list_summaries`], newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T = Job> {
    /// The jobs, by id descending.
    pub jobs: Vec<T>,
    /// Pass as [`JobFilter::cursor`] for the next page; `None` when this is the last.
    pub next_cursor: Option<i64>,
}

/// What a module is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// A component of the `wasmq:task` world.
    Component,
    /// A WASI command module (core Wasm, `_start`).
    Command,
}

impl ModuleKind {
    /// The stored name: `component` or `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            ModuleKind::Component => "component",
            ModuleKind::Command => "command",
        }
    }
}

impl FromStr for ModuleKind {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "component" => Ok(ModuleKind::Component),
            "command" => Ok(ModuleKind::Command),
            other => Err(StoreError::Invalid(format!(
                "`{other}` is not a module kind"
            ))),
        }
    }
}

/// A module version to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModule {
    /// The owner.
    pub tenant: String,
    /// The name jobs are enqueued by.
    pub name: String,
    /// What it is (the caller validated it by compiling).
    pub kind: ModuleKind,
    /// sha256 of `bytes`, lower-case hex. A backend may verify it; PostgreSQL does.
    pub digest: String,
    /// The Wasm bytes.
    pub bytes: Vec<u8>,
    /// Default limits of its jobs.
    pub limits: Limits,
}

/// One stored version of a module (without its bytes: see [`Store::module_bytes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The owner.
    pub tenant: String,
    /// The name.
    pub name: String,
    /// 1, 2, … per tenant and name.
    pub version: u32,
    /// sha256 of the bytes, lower-case hex.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// What it is.
    pub kind: ModuleKind,
    /// Default limits of its jobs.
    pub limits: Limits,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

/// The answer to [`Store::put_module`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutModule {
    /// The latest version after the call.
    pub module: Module,
    /// True when a new version was stored; false when the latest version already had the
    /// same digest, kind and limits (the call changed nothing).
    pub created: bool,
}

/// What a module's jobs may reach, set per module name (it applies to every version,
/// and a new upload keeps it). Default: nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleSettings {
    /// Canonical allow-list entries (`https://api.example.com`); empty: no network.
    pub allowed_hosts: Vec<String>,
    /// Config values, readable by the guest.
    pub values: std::collections::BTreeMap<String, String>,
    /// Secrets, sealed under the server's key ([`crate::secrets`]); never shown.
    pub secrets: std::collections::BTreeMap<String, String>,
}

/// Something that happened in the store, possibly on another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEvent {
    /// Jobs became available in `queue`: idle workers of that queue should claim.
    JobsAvailable {
        /// The queue.
        queue: String,
    },
    /// A user asked to cancel running job `id`: its worker should interrupt it.
    CancelRequested {
        /// The job.
        id: i64,
    },
    /// Jobs finished for good (completed, failed or cancelled): long-polls should look.
    JobsFinished {
        /// The jobs.
        ids: Vec<i64>,
    },
    /// The notification connection was lost and is back: events may have been missed, so
    /// every waiter should look (workers claim, long-polls re-read).
    Reconnected,
}

/// Errors of the store. Messages are for people and never contain SQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The thing asked for does not exist (in this tenant).
    #[error("not found")]
    NotFound,
    /// A job names a module that has no stored version in its tenant.
    #[error("module `{module}` does not exist; upload it first")]
    ModuleNotFound {
        /// The module name.
        module: String,
    },
    /// The request conflicts with what is stored (e.g. a uniqueness rule).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request is malformed (e.g. a digest that does not match the bytes).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The database cannot be reached or is restarting; retry later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Any other database failure (details are in the log, not here).
    #[error("{0}")]
    Database(String),
}

impl StoreError {
    /// Whether retrying the same call later may succeed (the database was unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// The durable store behind wasmq. Implementations: [`postgres::PgStore`] (any number of
/// nodes) and [`sqlite::SqliteStore`] (one node, one file). All must pass the conformance
/// suite (`tests/src/conformance.rs`).
///
/// Used as `Arc<dyn Store>`. Every method is one transaction; batch methods take thousands
/// of items in one round trip.
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores `jobs` in one transaction and returns them in input order. A job with a future
    /// `run_at` is `scheduled`, any other `available`, except that a store with a
    /// [`handoff`](Store::handoff) may give a lone due job without a key straight to an
    /// idle worker of this process: it is then answered `running` (attempt 1, for that
    /// worker) or, if it was run before it was stored, with its first attempt's outcome
    /// (`completed`, `retryable`, `failed`). An idempotency key already stored for
    /// the tenant (or earlier in the same batch) returns that job with `duplicate: true`.
    /// Fails as a whole with [`StoreError::ModuleNotFound`] if a job names a module with no
    /// version (and no digest). Workers of queues that received available jobs are woken
    /// ([`StoreEvent::JobsAvailable`]).
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError>;

    /// Claims up to `limit` due jobs of `queue` (waiting, `run_at` passed) for `worker_id`:
    /// highest priority first, then earliest `run_at`, then lowest id. Each becomes
    /// `running` with its attempt incremented, `started_at` now, its progress cleared and a
    /// lease of `lease`. Concurrent claimers never receive the same job. Returned in claim
    /// order.
    async fn claim(
        &self,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError>;

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
    /// jobs that finished for good.
    async fn finish(&self, items: Vec<Finish>) -> Result<Vec<bool>, StoreError>;

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

    /// Cancels job `id` of `tenant`: a waiting job becomes `cancelled` at once (error kind
    /// `cancelled`); a running one gets `cancel_requested` and its worker is told
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
}

/// One row of [`Store::count_jobs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// How many jobs.
    pub count: u64,
}

/// The delay before retry number `attempt` (1 after the first failure): 1 s × 2^(attempt−1),
/// capped at one hour, then jittered uniformly by ±25 % (so the cap is at most 75 minutes),
/// which spreads the retries of jobs that failed together. Attempt 0 is treated as 1.
pub fn backoff(attempt: u32) -> Duration {
    let base = backoff_base(attempt);
    base.mul_f64(rand::random_range(0.75..=1.25))
}

/// The delay [`backoff`] jitters: 1 s × 2^(attempt−1), capped at [`BACKOFF_CAP`].
pub fn backoff_base(attempt: u32) -> Duration {
    let exponent = attempt.saturating_sub(1).min(30);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_CAP)
}

/// The first retry delay of [`backoff`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest un-jittered delay of [`backoff`].
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second() {
        assert_eq!(backoff_base(0), Duration::from_secs(1));
        assert_eq!(backoff_base(1), Duration::from_secs(1));
        assert_eq!(backoff_base(2), Duration::from_secs(2));
        assert_eq!(backoff_base(3), Duration::from_secs(4));
        assert_eq!(backoff_base(10), Duration::from_secs(512));
    }

    #[test]
    fn backoff_is_capped_at_an_hour() {
        assert_eq!(backoff_base(13), BACKOFF_CAP);
        assert_eq!(backoff_base(u32::MAX), BACKOFF_CAP);
        for _ in 0..100 {
            assert!(backoff(u32::MAX) <= BACKOFF_CAP.mul_f64(1.25));
        }
    }

    #[test]
    fn backoff_jitter_stays_within_a_quarter_and_varies() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let d = backoff(3);
            assert!(d >= Duration::from_secs(3), "{d:?}");
            assert!(d <= Duration::from_secs(5), "{d:?}");
            seen.insert(d);
        }
        assert!(seen.len() > 100, "jitter should spread retries");
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>().unwrap(), state);
            assert_eq!(
                serde_json::to_value(state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
        assert!("done".parse::<JobState>().is_err());
    }

    #[test]
    fn error_kinds_serialize_as_their_names() {
        let error = JobError::new(ErrorKind::OutOfFuel, "fuel exhausted");
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json["kind"], "out_of_fuel");
        assert_eq!(ErrorKind::OutOfFuel.as_str(), "out_of_fuel");
    }

    #[test]
    fn unset_limits_are_left_out_of_json() {
        let limits = Limits {
            fuel: Some(5),
            ..Limits::default()
        };
        assert_eq!(serde_json::to_string(&limits).unwrap(), r#"{"fuel":5}"#);
        assert_eq!(
            serde_json::from_str::<Limits>("{}").unwrap(),
            Limits::default()
        );
    }
}
