//! A job as stored and as enqueued: its state, errors, progress, usage and the
//! columns a listing shows.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Limits, StoreError};

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
    /// Waiting for jobs it depends on to complete; never claimed (see [`super::deps`]).
    Waiting,
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
    pub const ALL: [JobState; 8] = [
        JobState::Waiting,
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
            JobState::Waiting => "waiting",
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

    /// Whether the job waits to be claimed (`scheduled`, `available` or `retryable`); a
    /// `waiting` job waits for its dependencies first, and is not counted here.
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
    /// A job it depends on failed or was cancelled, so it was cancelled before it ran.
    DependencyFailed,
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
            ErrorKind::DependencyFailed => "dependency_failed",
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
    /// Child jobs the attempt enqueued; absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub children: u64,
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
    /// The jobs it depends on, as enqueued (ascending ids).
    pub depends_on: Vec<i64>,
    /// How many jobs were enqueued depending on it.
    pub dependents: u32,
    /// The job whose completed attempt enqueued it (see [`super::ChildJob`]).
    pub parent_id: Option<i64>,
    /// Parents above it: 0 for a job enqueued through the API.
    pub depth: u16,
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
    /// The jobs it depends on, as enqueued (ascending ids).
    pub depends_on: Vec<i64>,
    /// How many jobs were enqueued depending on it.
    pub dependents: u32,
    /// The job whose completed attempt enqueued it (see [`super::ChildJob`]).
    pub parent_id: Option<i64>,
    /// Parents above it: 0 for a job enqueued through the API.
    pub depth: u16,
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
            depends_on,
            dependents,
            parent_id,
            depth,
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
            depends_on,
            dependents,
            parent_id,
            depth,
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
            depends_on: self.depends_on,
            dependents: self.dependents,
            parent_id: self.parent_id,
            depth: self.depth,
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
            depends_on: Vec::new(),
            dependents: 0,
            parent_id: None,
            depth: 0,
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
    /// Whether the job may be run before it is stored, when it is handed to an idle worker
    /// of this process [true]. Set it false for a job whose attempt can have an effect
    /// outside its sandbox (outbound network): it is then stored before its guest starts.
    pub may_run_ahead: bool,
    /// Debounce: while a job of the same tenant and key has not started, this enqueue
    /// replaces it instead of adding one (see [`super::Coalesce`]). Never with an idempotency
    /// key or a `run_at` (the window sets the run time).
    pub coalesce: Option<super::Coalesce>,
    /// The jobs it waits for (see [`super::deps`]): it is `waiting` until every one has
    /// completed, and cancelled (`dependency_failed`) if one fails or is cancelled.
    pub depends_on: Vec<super::Dependency>,
}

impl NewJob {
    /// A job for `module` with `input` and every default: tenant and queue `default`,
    /// priority 0, now, 3 attempts, no limit overrides, no idempotency or coalesce key.
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
            may_run_ahead: true,
            coalesce: None,
            depends_on: Vec::new(),
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
    /// True when no job was created because a waiting job of the same coalesce key took
    /// this enqueue's input (the job answered).
    pub coalesced: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
