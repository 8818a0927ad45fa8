//! Rows of the PostgreSQL driver: decoding what it reads, encoding what it binds, and
//! turning driver errors into domain errors at the store's edge.

use std::time::Duration;

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::types::Json;

use crate::queue::driver::{decode_err, sqlx_err};
use crate::queue::{
    AttemptRecord, Job, JobBody, JobError, JobSummary, Limits, Module, Progress, StoreError, Usage,
};

/// Turns a driver error into a domain error ([`sqlx_err`] with PostgreSQL's codes).
pub(super) fn db_err(e: sqlx::Error) -> StoreError {
    sqlx_err(e, |db| {
        let code = db.code().unwrap_or_default();
        match code.as_ref() {
            "22P02" | "22003" => {
                tracing::warn!(error = %db, "store rejected a value");
                Some(StoreError::Invalid("a value is out of range".into()))
            }
            "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03" => Some(
                StoreError::Unavailable(format!("the database is busy or restarting ({code})")),
            ),
            c if c.starts_with("08") => Some(StoreError::Unavailable(format!(
                "the database connection failed ({code})"
            ))),
            _ => None,
        }
    })
}

pub(super) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|e| decode_err(column, e))
}

pub(super) fn to_u32(column: &str, value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| decode_err(column, e))
}

pub(super) fn to_u64(column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| decode_err(column, e))
}

pub(super) fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
    let body = JobBody {
        input: get(row, "input")?,
        result: get(row, "result")?,
        log: get(row, "log")?,
        log_dropped: to_u64("log_dropped", get(row, "log_dropped")?)?,
        worker_id: get(row, "worker_id")?,
        lease_expires_at: get(row, "lease_expires_at")?,
    };
    Ok(Job::from_parts(summary_from_row(row)?, body))
}

/// Reads the [`SUMMARY_COLUMNS`](crate::queue::driver::SUMMARY_COLUMNS).
pub(super) fn summary_from_row(row: &PgRow) -> Result<JobSummary, StoreError> {
    let state: String = get(row, "state")?;
    Ok(JobSummary {
        id: get(row, "id")?,
        tenant: get(row, "tenant")?,
        module: get(row, "module")?,
        digest: get(row, "digest")?,
        queue: get(row, "queue")?,
        priority: get(row, "priority")?,
        state: state.parse().map_err(|e| decode_err("state", e))?,
        run_at: get(row, "run_at")?,
        attempt: to_u32("attempt", get(row, "attempt")?)?,
        max_attempts: to_u32("max_attempts", get(row, "max_attempts")?)?,
        limits: get::<Json<Limits>>(row, "limits")?.0,
        idempotency_key: get(row, "idempotency_key")?,
        progress: get::<Option<Json<Progress>>>(row, "progress")?.map(|j| j.0),
        error: get::<Option<Json<JobError>>>(row, "error")?.map(|j| j.0),
        usage: get::<Option<Json<Usage>>>(row, "usage")?.map(|j| j.0),
        history: get::<Json<Vec<AttemptRecord>>>(row, "history")?.0,
        created_at: get(row, "created_at")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
        cancel_requested: get(row, "cancel_requested")?,
    })
}

pub(super) fn module_from_row(row: &PgRow) -> Result<Module, StoreError> {
    let kind: String = get(row, "kind")?;
    Ok(Module {
        tenant: get(row, "tenant")?,
        name: get(row, "name")?,
        version: to_u32("version", get(row, "version")?)?,
        digest: get(row, "digest")?,
        size: to_u64("size", get(row, "size")?)?,
        kind: kind.parse().map_err(|e| decode_err("kind", e))?,
        limits: get::<Json<Limits>>(row, "limits")?.0,
        created_at: get(row, "created_at")?,
    })
}

pub(super) fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("store types serialize to JSON")
}

/// A progress report as stored (the core made its note storable).
pub(super) fn progress_json(progress: &Progress) -> serde_json::Value {
    json(progress)
}

pub(super) fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

pub(super) fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

pub(super) fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `sql` (`ENQUEUE_RUNNING`, `ENQUEUE_FINISHED`) with `job`'s id and columns as
/// `$1..$9`: id, tenant, module, digest, queue, limits, priority, input, max_attempts.
pub(super) fn bind_row<'q>(
    sql: &'static str,
    job: &'q Job,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(job.id)
        .bind(&job.tenant)
        .bind(&job.module)
        .bind(&job.digest)
        .bind(&job.queue)
        .bind(json(&job.limits))
        .bind(job.priority)
        .bind(&job.input)
        .bind(clamp_i32(job.max_attempts))
}
