//! Schedule rows on PostgreSQL (see `queue::schedules`; the policy is `crate::schedule`).

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use super::PgDriver;
use super::rows::{db_err, get, to_u32};
use crate::queue::{CatchUp, Limits, NewSchedule, Schedule, ScheduleAdvance, StoreError};

/// Every put and delete tells the other nodes' schedulers to look again.
pub(super) const CHANNEL_SCHEDULES: &str = "wasmq_schedules";

const PUT: &str = "
    WITH up AS (
        INSERT INTO wasmq_schedules (tenant, name, cron, timezone, module, input, queue,
            priority, max_attempts, limits, catch_up, paused, next_run_at, revision,
            created_at, updated_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 1, now(), now())
        ON CONFLICT (tenant, name) DO UPDATE SET
            cron = EXCLUDED.cron, timezone = EXCLUDED.timezone, module = EXCLUDED.module,
            input = EXCLUDED.input, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
            max_attempts = EXCLUDED.max_attempts, limits = EXCLUDED.limits,
            catch_up = EXCLUDED.catch_up, paused = EXCLUDED.paused,
            next_run_at = EXCLUDED.next_run_at,
            revision = wasmq_schedules.revision + 1, updated_at = now()
        RETURNING revision
    )
    SELECT up.revision, pg_notify('wasmq_schedules', $14 || ' ') FROM up";

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
    select!("WHERE s.tenant = $1 AND ($2::text IS NULL OR s.name = $2) ORDER BY s.name");

const SELECT_DUE: &str =
    select!("WHERE NOT s.paused AND s.next_run_at <= $1 ORDER BY s.next_run_at LIMIT $2");

const DELETE: &str = "
    WITH gone AS (DELETE FROM wasmq_schedules WHERE tenant = $1 AND name = $2 RETURNING 1)
    SELECT pg_notify('wasmq_schedules', $3 || ' ') FROM gone";

const NEXT: &str = "
    SELECT min(next_run_at) FROM wasmq_schedules
    WHERE NOT paused AND next_run_at IS NOT NULL";

const ADVANCE: &str = "
    UPDATE wasmq_schedules
    SET next_run_at = $5, last_run_at = $4, last_job_id = coalesce($6, last_job_id),
        last_error = $7
    WHERE tenant = $1 AND name = $2 AND revision = $3 AND next_run_at = $4";

fn schedule_from_row(row: &PgRow) -> Result<Schedule, StoreError> {
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
            max_attempts: to_u32("max_attempts", get(row, "max_attempts")?)?,
            limits: get::<Json<Limits>>(row, "limits")?.0,
            catch_up: CatchUp::from_stored(&catch_up),
            paused: get(row, "paused")?,
            next_run_at: get(row, "next_run_at")?,
        },
        revision: get(row, "revision")?,
        last_run_at: get(row, "last_run_at")?,
        last_job_id: get(row, "last_job_id")?,
        last_job_state: state.and_then(|s| s.parse().ok()),
        last_error: get(row, "last_error")?,
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
    })
}

impl PgDriver {
    pub(super) async fn put_schedule_row(&self, s: NewSchedule) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let revision: i64 = sqlx::query_scalar(PUT)
            .bind(&s.tenant)
            .bind(&s.name)
            .bind(&s.cron)
            .bind(&s.timezone)
            .bind(&s.module)
            .bind(&s.input)
            .bind(&s.queue)
            .bind(s.priority)
            .bind(i32::try_from(s.max_attempts).unwrap_or(i32::MAX))
            .bind(Json(&s.limits))
            .bind(s.catch_up.as_str())
            .bind(s.paused)
            .bind(s.next_run_at)
            .bind(&*self.node)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        // A put that makes the row starts it at revision 1 (a delete removes the row).
        Ok(revision == 1)
    }

    pub(super) async fn schedule_rows(
        &self,
        tenant: &str,
        name: Option<&str>,
    ) -> Result<Vec<Schedule>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(SELECT_TENANT)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(schedule_from_row).collect()
    }

    pub(super) async fn delete_schedule_row(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let gone = sqlx::query(DELETE)
            .bind(tenant)
            .bind(name)
            .bind(&*self.node)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?
            .is_some();
        conn.keep();
        Ok(gone)
    }

    pub(super) async fn due_schedule_rows(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Schedule>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(SELECT_DUE)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(schedule_from_row).collect()
    }

    pub(super) async fn next_schedule_tick(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let next: Option<DateTime<Utc>> = sqlx::query_scalar(NEXT)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(next)
    }

    pub(super) async fn advance_schedule_row(
        &self,
        a: ScheduleAdvance,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let done = sqlx::query(ADVANCE)
            .bind(&a.tenant)
            .bind(&a.name)
            .bind(a.revision)
            .bind(a.tick)
            .bind(a.next_run_at)
            .bind(a.job_id)
            .bind(a.error.as_deref())
            .execute(&mut *conn)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        conn.keep();
        Ok(done)
    }
}
