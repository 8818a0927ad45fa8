//! Schedule rows on SQLite (see `queue::schedules`; the policy is `crate::schedule`).

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;

use super::SqliteDriver;
use super::rows::{db_err, from_micros, get, get_json, get_opt_time, get_time, get_u32, micros};
use crate::queue::{CatchUp, NewSchedule, Schedule, ScheduleAdvance, StoreError};

const PUT: &str = "
    INSERT INTO wasmq_schedules (tenant, name, cron, timezone, module, input, queue,
        priority, max_attempts, limits, catch_up, paused, next_run_at, revision,
        created_at, updated_at)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1, ?14, ?14)
    ON CONFLICT (tenant, name) DO UPDATE SET
        cron = excluded.cron, timezone = excluded.timezone, module = excluded.module,
        input = excluded.input, queue = excluded.queue, priority = excluded.priority,
        max_attempts = excluded.max_attempts, limits = excluded.limits,
        catch_up = excluded.catch_up, paused = excluded.paused,
        next_run_at = excluded.next_run_at,
        revision = wasmq_schedules.revision + 1, updated_at = excluded.updated_at
    RETURNING revision";

/// A schedule with its last job's state, filtered by `$where`.
macro_rules! select {
    ($where:literal) => {
        concat!(
            "SELECT s.*, j.state AS last_job_state FROM wasmq_schedules s ",
            "LEFT JOIN wasmq_jobs j ON j.id = s.last_job_id AND j.tenant = s.tenant ",
            $where
        )
    };
}

const SELECT_TENANT: &str =
    select!("WHERE s.tenant = ?1 AND (?2 IS NULL OR s.name = ?2) ORDER BY s.name");

const SELECT_DUE: &str = select!(
    "WHERE NOT s.paused AND s.next_run_at IS NOT NULL AND s.next_run_at <= ?1 \
     ORDER BY s.next_run_at LIMIT ?2"
);

const DELETE: &str = "DELETE FROM wasmq_schedules WHERE tenant = ?1 AND name = ?2";

const NEXT: &str = "
    SELECT min(next_run_at) FROM wasmq_schedules
    WHERE NOT paused AND next_run_at IS NOT NULL";

const ADVANCE: &str = "
    UPDATE wasmq_schedules
    SET next_run_at = ?5, last_run_at = ?4, last_job_id = coalesce(?6, last_job_id),
        last_error = ?7
    WHERE tenant = ?1 AND name = ?2 AND revision = ?3 AND next_run_at = ?4";

fn schedule_from_row(row: &SqliteRow) -> Result<Schedule, StoreError> {
    let catch_up: String = get(row, "catch_up")?;
    let state: Option<String> = get(row, "last_job_state")?;
    Ok(Schedule {
        spec: NewSchedule {
            tenant: get(row, "tenant")?,
            name: get(row, "name")?,
            cron: get(row, "cron")?,
            timezone: get(row, "timezone")?,
            module: get(row, "module")?,
            input: get(row, "input")?,
            queue: get(row, "queue")?,
            priority: get(row, "priority")?,
            max_attempts: get_u32(row, "max_attempts")?,
            limits: get_json(row, "limits")?,
            catch_up: CatchUp::from_stored(&catch_up),
            paused: get(row, "paused")?,
            next_run_at: get_opt_time(row, "next_run_at")?,
        },
        revision: get(row, "revision")?,
        last_run_at: get_opt_time(row, "last_run_at")?,
        last_job_id: get(row, "last_job_id")?,
        last_job_state: state.and_then(|s| s.parse().ok()),
        last_error: get(row, "last_error")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

impl SqliteDriver {
    pub(super) async fn put_schedule_row(&self, s: NewSchedule) -> Result<bool, StoreError> {
        let limits = serde_json::to_string(&s.limits).expect("limits serialize to JSON");
        let revision: i64 = sqlx::query_scalar(PUT)
            .bind(&s.tenant)
            .bind(&s.name)
            .bind(&s.cron)
            .bind(&s.timezone)
            .bind(&s.module)
            .bind(&s.input)
            .bind(&s.queue)
            .bind(s.priority)
            .bind(s.max_attempts)
            .bind(limits)
            .bind(s.catch_up.as_str())
            .bind(s.paused)
            .bind(s.next_run_at.map(micros))
            .bind(micros(Utc::now()))
            .fetch_one(&self.write)
            .await
            .map_err(db_err)?;
        // A put that makes the row starts it at revision 1 (a delete removes the row).
        Ok(revision == 1)
    }

    pub(super) async fn schedule_rows(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(SELECT_TENANT)
            .bind(tenant)
            .bind(name)
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(schedule_from_row).collect()
    }

    pub(super) async fn delete_schedule_row(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let gone = sqlx::query(DELETE)
            .bind(tenant)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        Ok(gone)
    }

    pub(super) async fn due_schedule_rows(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        let rows = sqlx::query(SELECT_DUE)
            .bind(micros(now))
            .bind(i64::from(limit))
            .fetch_all(&self.read)
            .await
            .map_err(db_err)?;
        rows.iter().map(schedule_from_row).collect()
    }

    pub(super) async fn next_schedule_tick(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(NEXT)
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        next.map(|v| from_micros("next_run_at", v)).transpose()
    }

    pub(super) async fn advance_schedule_row(
        &self,
        a: ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(ADVANCE)
            .bind(&a.tenant)
            .bind(&a.name)
            .bind(a.revision)
            .bind(micros(a.tick))
            .bind(a.next_run_at.map(micros))
            .bind(a.job_id)
            .bind(a.error.as_deref())
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        Ok(done)
    }
}
