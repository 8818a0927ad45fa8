//! What a worker reports about an attempt, what the store answers to heartbeats and
//! rescues, and the retry backoff.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ErrorKind, JobError, NewJob, Progress, Usage};

/// How an attempt ended, as reported by a worker to [`super::Store::finish`].
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
    /// The jobs its guest enqueued: stored in the same commit if the report is applied
    /// and completes the job; otherwise never.
    pub children: Vec<ChildJob>,
}

/// A job enqueued by a running job's guest (WIT `enqueue`).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildJob {
    /// Drawn at the guest's call ([`super::Store::draw_ids`]): the id the guest was told.
    pub id: i64,
    /// The job: the parent's tenant, its digest pinned at the call, no coalescing and no
    /// dependencies. A stored job with its idempotency key makes this one not stored.
    pub job: NewJob,
    /// The parent's depth + 1.
    pub depth: u16,
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
            children: Vec::new(),
        }
    }
}

/// Most entries a job's [`Job::history`] keeps: the first failure (often the cause) and
/// the latest `MAX_HISTORY - 1`. A job may have up to 100 attempts, and each entry holds
/// a message of up to [`crate::text::MAX_MESSAGE_BYTES`]; the attempt numbers of the
/// entries kept show which were dropped.
pub const MAX_HISTORY: usize = 20;

/// names no worker (host names and pids are the operator's, in the log).
pub const LOST_MESSAGE: &str =
    "its worker stopped renewing its lease (crashed or lost the database)";
/// The message of a lost job whose cancellation had been requested.
pub const LOST_CANCELLED_MESSAGE: &str = "cancelled; its worker vanished";

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
}
