//! Tenant rows on PostgreSQL (`wasmq_tenants`, migration 0013) and the counts their
//! quotas are checked against.

use super::PgDriver;
use super::rows::db_err;
use crate::queue::driver::TenantRows;
use crate::queue::rows::{bind_tenant_change, tenant_columns, tenant_from_row, usage_from_row};
use crate::queue::{QuotaChange, StoreError, TenantRow, TenantUsage};

/// One statement: a quota the change does not touch keeps its stored value.
const PUT: &str = concat!(
    "
    INSERT INTO wasmq_tenants (name, max_unfinished_jobs, max_module_bytes, enqueue_rate,
        enqueue_burst, max_running, max_schedules, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $14)
    ON CONFLICT (name) DO UPDATE SET
        max_unfinished_jobs = CASE WHEN $8 THEN excluded.max_unfinished_jobs
                                   ELSE wasmq_tenants.max_unfinished_jobs END,
        max_module_bytes = CASE WHEN $9 THEN excluded.max_module_bytes
                                ELSE wasmq_tenants.max_module_bytes END,
        enqueue_rate = CASE WHEN $10 THEN excluded.enqueue_rate
                            ELSE wasmq_tenants.enqueue_rate END,
        enqueue_burst = CASE WHEN $11 THEN excluded.enqueue_burst
                             ELSE wasmq_tenants.enqueue_burst END,
        max_running = CASE WHEN $12 THEN excluded.max_running
                           ELSE wasmq_tenants.max_running END,
        max_schedules = CASE WHEN $13 THEN excluded.max_schedules
                             ELSE wasmq_tenants.max_schedules END,
        updated_at = excluded.updated_at
    RETURNING ",
    tenant_columns!()
);

const ROW: &str = concat!(
    "SELECT ",
    tenant_columns!(),
    " FROM wasmq_tenants WHERE name = $1"
);

const CAPPED: &str = "SELECT name FROM wasmq_tenants WHERE max_running IS NOT NULL";

/// Each count reads one index range: the listing index for jobs, the primary keys of
/// modules and schedules.
const USAGE: &str = "
    SELECT
        (SELECT count(*) FROM wasmq_jobs WHERE tenant = $1
            AND state IN ('waiting', 'scheduled', 'available', 'retryable', 'running')) AS unfinished,
        (SELECT count(*) FROM wasmq_jobs WHERE tenant = $1 AND state = 'running') AS running,
        (SELECT coalesce(sum(size), 0)::bigint
            FROM (SELECT DISTINCT digest, size FROM wasmq_modules WHERE tenant = $1) m)
            AS module_bytes,
        (SELECT count(*) FROM wasmq_schedules WHERE tenant = $1) AS schedules";

/// Stops after `$2` entries of the listing index: the cost is bounded by the quota.
const UNFINISHED_UP_TO: &str = "
    SELECT count(*) FROM (SELECT 1 FROM wasmq_jobs WHERE tenant = $1
        AND state IN ('waiting', 'scheduled', 'available', 'retryable', 'running') LIMIT $2) j";

/// Each key once: idempotency keys are unique per tenant, and so are the coalesce keys
/// of jobs not started (`wasmq_jobs_coalesce`, whose predicate this repeats).
const KEYS_WITH_JOBS: &str = "
    SELECT (SELECT count(*) FROM wasmq_jobs WHERE tenant = $1 AND idempotency_key = ANY($2))
         + (SELECT count(*) FROM wasmq_jobs WHERE tenant = $1 AND coalesce_key = ANY($3)
                AND started_at IS NULL AND state IN ('scheduled', 'available'))";

const MODULE_BYTES: &str = "
    SELECT coalesce(sum(size), 0)::bigint, coalesce(bool_or(digest = $2), false)
    FROM (SELECT DISTINCT digest, size FROM wasmq_modules WHERE tenant = $1) m";

#[async_trait::async_trait]
impl TenantRows for PgDriver {
    async fn tenant_row(&self, tenant: &str) -> Result<Option<TenantRow>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(ROW)
            .bind(tenant)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(tenant_from_row).transpose()
    }

    async fn put_tenant_row(
        &self,
        tenant: &str,
        change: &QuotaChange,
    ) -> Result<TenantRow, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = bind_tenant_change(sqlx::query(PUT), tenant, change)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        tenant_from_row(&row)
    }

    async fn capped_tenants(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let names = sqlx::query_scalar(CAPPED)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(names)
    }

    async fn count_tenant_usage(&self, tenant: &str) -> Result<TenantUsage, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(USAGE)
            .bind(tenant)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        usage_from_row(&row)
    }

    async fn count_unfinished_up_to(&self, tenant: &str, up_to: u64) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let n: i64 = sqlx::query_scalar(UNFINISHED_UP_TO)
            .bind(tenant)
            .bind(i64::try_from(up_to).unwrap_or(i64::MAX))
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(n.max(0) as u64)
    }

    async fn count_keys_with_jobs(
        &self,
        tenant: &str,
        idempotency_keys: &[String],
        coalesce_keys: &[String],
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let n: i64 = sqlx::query_scalar(KEYS_WITH_JOBS)
            .bind(tenant)
            .bind(idempotency_keys)
            .bind(coalesce_keys)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(n.max(0) as u64)
    }

    async fn sum_module_bytes(
        &self,
        tenant: &str,
        digest: &str,
    ) -> Result<(u64, bool), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let (bytes, has): (i64, bool) = sqlx::query_as(MODULE_BYTES)
            .bind(tenant)
            .bind(digest)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok((bytes.max(0) as u64, has))
    }
}
