//! Schedule rows: what a schedule enqueues, when it fires next, and what its last tick did.
//!
//! The store keeps rows and answers compare-and-set advances; when to fire, what to skip
//! and the job a tick makes are the scheduler's (`crate::schedule`), written once for both
//! stores.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{JobState, Limits};

/// The statement both drivers read schedules with: each row and its last job's state,
/// filtered and ordered by `$where` (in the driver's placeholders).
macro_rules! select_schedules {
    ($where:literal) => {
        concat!(
            "SELECT s.*, j.state AS last_job_state FROM wasmq_schedules s ",
            "LEFT JOIN wasmq_jobs j ON j.id = s.last_job_id AND j.tenant = s.tenant ",
            $where
        )
    };
}
pub(crate) use select_schedules;

/// What happens to ticks missed while no node ran (the schedule's `catch_up`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed ticks make no job; the schedule goes on at its next tick.
    #[default]
    Skip,
    /// One job stands for all missed ticks.
    One,
}

impl CatchUp {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::One => "one",
        }
    }

    /// The variant a stored name means; unknown names are [`CatchUp::Skip`].
    pub fn from_stored(name: &str) -> Self {
        if name == "one" {
            CatchUp::One
        } else {
            CatchUp::Skip
        }
    }
}

/// A schedule as written by `PUT /v1/schedules/{name}`: the job template and its timing.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    /// The owning tenant.
    pub tenant: String,
    /// Unique within the tenant.
    pub name: String,
    /// The cron expression, as given.
    pub cron: String,
    /// The IANA zone the expression is read in.
    pub timezone: String,
    /// The module each tick enqueues (its latest version at the tick).
    pub module: String,
    /// The input of each job.
    pub input: Vec<u8>,
    /// The jobs' queue.
    pub queue: String,
    /// The jobs' priority.
    pub priority: i16,
    /// The jobs' attempts.
    pub max_attempts: u32,
    /// The jobs' own limits (merged over the module's defaults at each tick).
    pub limits: Limits,
    /// What missed ticks do.
    pub catch_up: CatchUp,
    /// A paused schedule keeps its row and fires nothing.
    pub paused: bool,
    /// The first tick, computed by the scheduler; `None` if the expression names no
    /// future instant.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// A stored schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// What was put.
    pub spec: NewSchedule,
    /// Bumped by every put, so an advance computed from an older version is refused.
    pub revision: i64,
    /// The tick that last fired (or was skipped).
    pub last_run_at: Option<DateTime<Utc>>,
    /// The job the last tick made (or found made by another node).
    pub last_job_id: Option<i64>,
    /// That job's state now, if it is still stored.
    pub last_job_state: Option<JobState>,
    /// Why the last tick made no job (e.g. its module was deleted).
    pub last_error: Option<String>,
    /// When it was first put.
    pub created_at: DateTime<Utc>,
    /// When it was last put.
    pub updated_at: DateTime<Utc>,
}

/// The outcome of one tick, written by [`super::Store::advance_schedule`] only if the
/// schedule is still at `revision` and `tick`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleAdvance {
    /// The tenant.
    pub tenant: String,
    /// The schedule.
    pub name: String,
    /// The revision the tick was computed from.
    pub revision: i64,
    /// The tick handled (the row's `next_run_at` as read).
    pub tick: DateTime<Utc>,
    /// The tick after it, or `None` when the expression names no later instant.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The job made, if any.
    pub job_id: Option<i64>,
    /// Why no job was made, if none was.
    pub error: Option<String>,
}
