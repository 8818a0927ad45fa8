//! From an attempt's report to the store's finish: complete, retry or fail.

use crate::queue::{self, ErrorKind, Finish, Job, JobError, Outcome as StoreOutcome};
use crate::runtime::{AttemptReport, FailureKind, Limits, Outcome};

/// The limits an attempt runs under: the job's (which carry the module's defaults,
/// merged at enqueue) over the maxima of the module's language, never above them.
pub fn effective_limits(job: &queue::Limits, max: &Limits) -> Limits {
    Limits {
        fuel: job.fuel.unwrap_or(max.fuel),
        timeout_ms: job.timeout_ms.unwrap_or(max.timeout_ms),
        memory_bytes: job.memory_bytes.unwrap_or(max.memory_bytes),
        output_bytes: job.output_bytes.unwrap_or(max.output_bytes),
        log_bytes: job.log_bytes.unwrap_or(max.log_bytes),
    }
    .clamp_to(max)
}

fn error_kind(kind: FailureKind) -> ErrorKind {
    match kind {
        FailureKind::OutOfFuel => ErrorKind::OutOfFuel,
        FailureKind::Timeout => ErrorKind::Timeout,
        FailureKind::MemoryLimit => ErrorKind::MemoryLimit,
        FailureKind::OutputLimit => ErrorKind::OutputLimit,
        FailureKind::Trap => ErrorKind::Trap,
        FailureKind::TaskError { .. } => ErrorKind::TaskError,
        FailureKind::Cancelled => ErrorKind::Cancelled,
    }
}

/// Decides what the attempt means for the job. `released` says the worker interrupted
/// it to shut down: the job goes back unrun rather than being cancelled.
pub fn finish_for(job: &Job, report: AttemptReport, released: bool) -> Finish {
    let outcome = match report.outcome {
        Outcome::Success { result } => StoreOutcome::Complete { result },
        Outcome::Failure(f) if f.kind == FailureKind::Cancelled && released => {
            StoreOutcome::Release
        }
        Outcome::Failure(f) if f.kind == FailureKind::Cancelled => StoreOutcome::Cancelled,
        Outcome::Failure(f) => {
            let retry = f.is_retryable() && job.attempt < job.max_attempts;
            let error = JobError::new(error_kind(f.kind), f.message);
            if retry {
                StoreOutcome::Retry {
                    error,
                    retry_at: chrono::Utc::now() + queue::backoff(job.attempt),
                }
            } else {
                StoreOutcome::Fail { error }
            }
        }
    };
    Finish {
        id: job.id,
        attempt: job.attempt,
        outcome,
        usage: queue::Usage {
            fuel: report.usage.fuel,
            memory_peak_bytes: report.usage.memory_peak_bytes,
            duration_ms: report.usage.duration_ms,
            http_requests: report.usage.http_requests,
            http_bytes_in: report.usage.http_bytes_in,
            http_bytes_out: report.usage.http_bytes_out,
            children: report.usage.children,
        },
        log: String::from_utf8_lossy(&report.log).into_owned(),
        log_dropped: report.log_dropped,
        progress: report.progress.map(|p| queue::Progress {
            percent: p.percent,
            note: p.note,
        }),
        // Filled in by the worker from its spawner, for a completed attempt only.
        children: Vec::new(),
    }
}
