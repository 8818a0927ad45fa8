//! A job as the API shows it, and the parts of it the store keeps as its own types.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JobState, Limits, json_or_base64};
use crate::queue::{self, Job, JobSummary};

/// A job as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Unique, increasing.
    pub id: i64,
    /// The module name.
    pub module: String,
    /// The module version's digest pinned at enqueue.
    pub digest: String,
    /// The queue.
    pub queue: String,
    /// Higher runs first.
    pub priority: i16,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts started so far.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Limits (the module's defaults merged with the job's overrides).
    pub limits: Limits,
    /// When it (next) runs.
    pub run_at: DateTime<Utc>,
    /// The idempotency key, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The schedule that made it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Reported by the current or last attempt.
    pub progress: Option<Progress>,
    /// The input, if it is UTF-8 JSON (left out of listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<serde_json::Value>,
    /// The input as base64, if it is not UTF-8 JSON (left out of listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// The result, if it is UTF-8 JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub result: Option<serde_json::Value>,
    /// The result as base64, if it is not UTF-8 JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_base64: Option<String>,
    /// The last failure.
    pub error: Option<JobError>,
    /// What the last finished attempt used.
    pub usage: Option<Usage>,
    /// Failed, lost or cancelled attempts, oldest first.
    pub history: Vec<HistoryEntry>,
    /// A cancel was requested while it ran.
    pub cancel_requested: bool,
    /// Enqueued.
    pub created_at: DateTime<Utc>,
    /// Its last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// It finished for good.
    pub finished_at: Option<DateTime<Utc>>,
    /// The jobs it depends on (it is `waiting` until all have completed).
    pub depends_on: Vec<i64>,
    /// How many jobs were enqueued depending on it.
    pub dependents: u32,
    /// The job whose completed attempt enqueued it, if one did.
    pub parent_id: Option<i64>,
}

impl JobView {
    /// The whole job; `with_input` false leaves the input out.
    pub fn new(job: Job, with_input: bool) -> Self {
        let (job, body) = job.into_parts();
        let (input, input_base64) = if with_input {
            json_or_base64(&body.input)
        } else {
            (None, None)
        };
        let (result, result_base64) = match &body.result {
            Some(bytes) => json_or_base64(bytes),
            None => (None, None),
        };
        JobView {
            input,
            input_base64,
            result,
            result_base64,
            ..JobView::listed(job)
        }
    }

    /// A job as a listing shows it: without its input and result.
    pub fn listed(job: JobSummary) -> Self {
        JobView {
            id: job.id,
            module: job.module,
            digest: job.digest,
            queue: job.queue,
            priority: job.priority,
            state: job.state.into(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            limits: job.limits.into(),
            run_at: job.run_at,
            schedule: job
                .idempotency_key
                .as_deref()
                .and_then(crate::schedule::schedule_of)
                .map(str::to_owned),
            idempotency_key: job.idempotency_key,
            progress: job.progress.map(Into::into),
            input: None,
            input_base64: None,
            result: None,
            result_base64: None,
            error: job.error.map(Into::into),
            usage: job.usage.map(Into::into),
            history: job.history.into_iter().map(Into::into).collect(),
            cancel_requested: job.cancel_requested,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            depends_on: job.depends_on,
            dependents: job.dependents,
            parent_id: job.parent_id,
        }
    }
}

/// A page of jobs.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobPage {
    /// Newest first; without input and result (get a job for those).
    pub jobs: Vec<JobView>,
    /// Pass as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Why an attempt or a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The fuel limit (Wasm instructions) was used up.
    OutOfFuel,
    /// The attempt ran longer than its timeout.
    Timeout,
    /// The instance needed more linear memory than allowed.
    MemoryLimit,
    /// The result was larger than allowed.
    OutputLimit,
    /// The guest trapped (panic, `unreachable`, …).
    Trap,
    /// The guest returned an error (`retry` or `fatal`).
    TaskError,
    /// The worker running it stopped renewing its lease.
    Lost,
    /// The job's pinned module is gone.
    ModuleMissing,
    /// The job was cancelled.
    Cancelled,
    /// A job it depends on failed or was cancelled, so it was cancelled before it ran.
    DependencyFailed,
}

impl From<queue::ErrorKind> for ErrorKind {
    fn from(k: queue::ErrorKind) -> Self {
        use queue::ErrorKind as K;
        match k {
            K::OutOfFuel => ErrorKind::OutOfFuel,
            K::Timeout => ErrorKind::Timeout,
            K::MemoryLimit => ErrorKind::MemoryLimit,
            K::OutputLimit => ErrorKind::OutputLimit,
            K::Trap => ErrorKind::Trap,
            K::TaskError => ErrorKind::TaskError,
            K::Lost => ErrorKind::Lost,
            K::ModuleMissing => ErrorKind::ModuleMissing,
            K::Cancelled => ErrorKind::Cancelled,
            K::DependencyFailed => ErrorKind::DependencyFailed,
        }
    }
}

/// The last failure of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// What happened, for a person.
    pub message: String,
}

impl From<queue::JobError> for JobError {
    fn from(e: queue::JobError) -> Self {
        JobError {
            kind: e.kind.into(),
            message: e.message,
        }
    }
}

/// One failed, lost or cancelled attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEntry {
    /// The attempt number (1 for the first).
    pub attempt: u32,
    /// When the failure was recorded.
    pub at: DateTime<Utc>,
    /// What kind of failure it was.
    pub kind: ErrorKind,
    /// What happened.
    pub message: String,
}

impl From<queue::AttemptRecord> for HistoryEntry {
    fn from(r: queue::AttemptRecord) -> Self {
        HistoryEntry {
            attempt: r.attempt,
            at: r.at,
            kind: r.kind.into(),
            message: r.message,
        }
    }
}

/// What an attempt reported about its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// 0–100.
    #[schema(maximum = 100)]
    pub percent: u8,
    /// A free-form note.
    #[serde(default)]
    pub note: Option<String>,
}

impl From<queue::Progress> for Progress {
    fn from(p: queue::Progress) -> Self {
        Progress {
            percent: p.percent,
            note: p.note,
        }
    }
}

/// What the last finished attempt used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Usage {
    /// Fuel consumed.
    pub fuel: u64,
    /// Peak linear memory, bytes.
    pub memory_peak_bytes: u64,
    /// Wall clock, ms.
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
    /// Child jobs it enqueued (stored with its completion); absent when none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub children: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<queue::Usage> for Usage {
    fn from(u: queue::Usage) -> Self {
        Usage {
            fuel: u.fuel,
            memory_peak_bytes: u.memory_peak_bytes,
            duration_ms: u.duration_ms,
            http_requests: u.http_requests,
            http_bytes_in: u.http_bytes_in,
            http_bytes_out: u.http_bytes_out,
            children: u.children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::same_json;
    use super::*;
    use queue::ErrorKind as K;

    #[test]
    fn job_parts_serialise_as_the_store_types_did() {
        let kinds = [
            K::OutOfFuel,
            K::Timeout,
            K::MemoryLimit,
            K::OutputLimit,
            K::Trap,
            K::TaskError,
            K::Lost,
            K::ModuleMissing,
            K::Cancelled,
            K::DependencyFailed,
        ];
        for kind in kinds {
            same_json::<_, ErrorKind>(kind);
            same_json::<_, JobError>(queue::JobError::new(kind, "why"));
            same_json::<_, HistoryEntry>(queue::AttemptRecord {
                attempt: 2,
                at: Utc::now(),
                kind,
                message: "why".into(),
            });
        }
        for note in [None, Some("half".to_owned())] {
            same_json::<_, Progress>(queue::Progress { percent: 50, note });
        }
        same_json::<_, Usage>(queue::Usage {
            fuel: 1,
            memory_peak_bytes: 2,
            duration_ms: 3,
            ..queue::Usage::default()
        });
        same_json::<_, Usage>(queue::Usage {
            http_requests: 4,
            http_bytes_in: 5,
            http_bytes_out: 6,
            ..queue::Usage::default()
        });
    }
}
