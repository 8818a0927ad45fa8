//! A schedule as the API shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JobState, Limits, json_or_base64};
use crate::queue::{self, Schedule};

/// A schedule as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleView {
    /// Unique within the tenant.
    pub name: String,
    /// The cron expression.
    pub cron: String,
    /// Its time zone.
    pub timezone: String,
    /// The module each tick runs.
    pub module: String,
    /// The input, if it is UTF-8 JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub input: Option<serde_json::Value>,
    /// The input as base64, if it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_base64: Option<String>,
    /// The jobs' queue.
    pub queue: String,
    /// The jobs' priority.
    pub priority: i16,
    /// The jobs' attempts.
    pub max_attempts: u32,
    /// The jobs' limit overrides.
    pub limits: Limits,
    /// What ticks missed while no node ran make.
    pub catch_up: CatchUp,
    /// Fires nothing while true.
    pub paused: bool,
    /// The next tick; absent if the expression names no later instant.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The last tick handled.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The last job made.
    pub last_job: Option<LastJob>,
    /// Why the last tick made no job (e.g. its module was deleted).
    pub last_error: Option<String>,
    /// First put.
    pub created_at: DateTime<Utc>,
    /// Last put.
    pub updated_at: DateTime<Utc>,
}

impl From<Schedule> for ScheduleView {
    fn from(s: Schedule) -> Self {
        let (input, input_base64) = json_or_base64(&s.spec.input);
        ScheduleView {
            name: s.spec.name,
            cron: s.spec.cron,
            timezone: s.spec.timezone,
            module: s.spec.module,
            input,
            input_base64,
            queue: s.spec.queue,
            priority: s.spec.priority,
            max_attempts: s.spec.max_attempts,
            limits: s.spec.limits.into(),
            catch_up: s.spec.catch_up.into(),
            paused: s.spec.paused,
            next_run_at: s.spec.next_run_at,
            last_run_at: s.last_run_at,
            last_job: s.last_job_id.map(|id| LastJob {
                id,
                state: s.last_job_state.map(Into::into),
            }),
            last_error: s.last_error,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The schedules of the key's tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScheduleList {
    /// By name.
    pub schedules: Vec<ScheduleView>,
}

/// The last job a schedule made.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LastJob {
    /// Its id.
    pub id: i64,
    /// Its state now; absent once it has been pruned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<JobState>,
}

/// What happens to ticks missed while no node ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Missed ticks make no job; the schedule goes on at its next tick.
    Skip,
    /// One job stands for all missed ticks.
    One,
}

impl From<queue::CatchUp> for CatchUp {
    fn from(c: queue::CatchUp) -> Self {
        match c {
            queue::CatchUp::Skip => CatchUp::Skip,
            queue::CatchUp::One => CatchUp::One,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::same_json;
    use super::*;

    #[test]
    fn catch_up_serialises_as_the_store_type_did() {
        for c in [queue::CatchUp::Skip, queue::CatchUp::One] {
            same_json::<_, CatchUp>(c);
        }
    }
}
