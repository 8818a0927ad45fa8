//! Schedule rows on PostgreSQL (see `queue::schedules`; the policy is `crate::schedule`).

use chrono::{DateTime, Utc};

use super::PgDriver;
use super::rows::{bind_advance, bind_schedule, db_err, get, schedule_from_row};
use crate::queue::driver::ScheduleRows;
use crate::queue::schedules::select_schedules;
use crate::queue::{NewSchedule, Schedule, ScheduleAdvance, StoreError};

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

const SELECT_TENANT: &str =
    select_schedules!("WHERE s.tenant = $1 AND ($2::text IS NULL OR s.name = $2) ORDER BY s.name");

const SELECT_DUE: &str =
    select_schedules!("WHERE NOT s.paused AND s.next_run_at <= $1 ORDER BY s.next_run_at LIMIT $2");

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

#[async_trait::async_trait]
impl ScheduleRows for PgDriver {
    async fn put_schedule(&self, s: NewSchedule) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = bind_schedule(sqlx::query(PUT), &s)
            .bind(&*self.node)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        let revision: i64 = get(&row, "revision")?;
        conn.keep();
        // A put that makes the row starts it at revision 1 (a delete removes the row).
        Ok(revision == 1)
    }

    async fn schedules(
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

    async fn delete_schedule(&self, tenant: &str, name: &str) -> Result<bool, StoreError> {
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

    async fn due_schedules(
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

    async fn next_schedule_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let next: Option<DateTime<Utc>> = sqlx::query_scalar(NEXT)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(next)
    }

    async fn advance_schedule(&self, a: ScheduleAdvance) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let done = bind_advance(sqlx::query(ADVANCE), &a)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?
            .rows_affected()
            == 1;
        conn.keep();
        Ok(done)
    }
}
