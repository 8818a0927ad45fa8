//! Schedule rows on SQLite (see `queue::schedules`; the policy is `crate::schedule`).

use chrono::{DateTime, Utc};

use super::SqliteDriver;
use super::rows::{
    bind_advance, bind_schedule, db_err, from_micros, get, micros, schedule_from_row,
};
use crate::queue::driver::ScheduleRows;
use crate::queue::schedules::select_schedules;
use crate::queue::{NewSchedule, Schedule, ScheduleAdvance, StoreError};

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

const SELECT_TENANT: &str =
    select_schedules!("WHERE s.tenant = ?1 AND (?2 IS NULL OR s.name = ?2) ORDER BY s.name");

const SELECT_DUE: &str = select_schedules!(
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

#[async_trait::async_trait]
impl ScheduleRows for SqliteDriver {
    async fn put_schedule(&self, s: NewSchedule) -> Result<bool, StoreError> {
        let revision: i64 = bind_schedule(sqlx::query(PUT), &s)
            .bind(micros(Utc::now()))
            .fetch_one(&self.write)
            .await
            .map_err(db_err)
            .and_then(|row| get(&row, "revision"))?;
        // A put that makes the row starts it at revision 1 (a delete removes the row).
        Ok(revision == 1)
    }

    async fn schedules(
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

    async fn delete_schedule(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
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

    async fn due_schedules(
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

    async fn next_schedule_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(NEXT)
            .fetch_one(&self.read)
            .await
            .map_err(db_err)?;
        next.map(|v| from_micros("next_run_at", v)).transpose()
    }

    async fn advance_schedule(&self, a: ScheduleAdvance) -> Result<bool, StoreError> {
        let done = bind_advance(sqlx::query(ADVANCE), &a)
            .execute(&self.write)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        Ok(done)
    }
}
