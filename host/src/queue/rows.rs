//! Rows read and written once for every driver: a driver says how it reads and binds each
//! kind of column ([`Columns`], [`Binds`]; times and JSON are where backends differ), and
//! jobs, modules and schedules are taken apart and assembled here, so a column is encoded
//! and decoded one way.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::driver::{SUMMARY_COLUMNS, decode_err};
use super::tenants::{QuotaChange, Quotas, TenantRow, TenantUsage};
use super::{
    CatchUp, Job, JobBody, JobSummary, Module, NewSchedule, QueueLimit, Schedule, ScheduleAdvance,
    StoreError,
};

/// One row of a backend, read column by column (by name); every error names its column.
pub trait Columns {
    /// A `text` column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable `text` column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// A bytes column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    /// A nullable bytes column.
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A 64-bit integer column.
    fn big(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable 64-bit integer column.
    fn opt_big(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A boolean column.
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
    /// A nullable double-precision column.
    fn opt_real(&self, column: &str) -> Result<Option<f64>, StoreError>;
    /// A 16-bit integer column (`smallint` on PostgreSQL).
    fn small(&self, column: &str) -> Result<i16, StoreError>;
    /// A 32-bit integer column (`integer` on PostgreSQL).
    fn int(&self, column: &str) -> Result<i32, StoreError>;
    /// A point in time.
    fn time(&self, column: &str) -> Result<DateTime<Utc>, StoreError>;
    /// A nullable point in time.
    fn opt_time(&self, column: &str) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// A JSON column.
    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError>;
    /// A nullable JSON column.
    fn opt_json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, StoreError>;
}

/// The [`Columns`] every backend reads natively (text, bytes, 64-bit integers, booleans),
/// over the invoking driver's own `get(row, column)`.
macro_rules! native_columns {
    () => {
        fn text(&self, column: &str) -> Result<String, $crate::queue::StoreError> {
            get(self, column)
        }
        fn opt_text(&self, column: &str) -> Result<Option<String>, $crate::queue::StoreError> {
            get(self, column)
        }
        fn bytes(&self, column: &str) -> Result<Vec<u8>, $crate::queue::StoreError> {
            get(self, column)
        }
        fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, $crate::queue::StoreError> {
            get(self, column)
        }
        fn big(&self, column: &str) -> Result<i64, $crate::queue::StoreError> {
            get(self, column)
        }
        fn opt_big(&self, column: &str) -> Result<Option<i64>, $crate::queue::StoreError> {
            get(self, column)
        }
        fn flag(&self, column: &str) -> Result<bool, $crate::queue::StoreError> {
            get(self, column)
        }
        fn opt_real(&self, column: &str) -> Result<Option<f64>, $crate::queue::StoreError> {
            get(self, column)
        }
    };
}
pub(crate) use native_columns;

/// A statement of a backend being bound, value by value in placeholder order.
pub trait Binds<'q>: Sized {
    /// A `text` value.
    fn text(self, value: &'q str) -> Self;
    /// A nullable `text` value.
    fn opt_text(self, value: Option<&'q str>) -> Self;
    /// A bytes value.
    fn bytes(self, value: &'q [u8]) -> Self;
    /// A 64-bit integer.
    fn big(self, value: i64) -> Self;
    /// A nullable 64-bit integer.
    fn opt_big(self, value: Option<i64>) -> Self;
    /// A boolean.
    fn flag(self, value: bool) -> Self;
    /// A nullable double-precision number.
    fn opt_real(self, value: Option<f64>) -> Self;
    /// A 16-bit integer.
    fn small(self, value: i16) -> Self;
    /// A count stored as a 32-bit integer (`integer` on PostgreSQL), saturating.
    fn count(self, value: u32) -> Self;
    /// A point in time.
    fn time(self, value: DateTime<Utc>) -> Self;
    /// A nullable point in time.
    fn opt_time(self, value: Option<DateTime<Utc>>) -> Self;
    /// A JSON value.
    fn json(self, value: &impl Serialize) -> Self;
}

/// The [`Binds`] every backend binds natively, over sqlx's own `bind`.
macro_rules! native_binds {
    () => {
        fn text(self, value: &'q str) -> Self {
            self.bind(value)
        }
        fn opt_text(self, value: Option<&'q str>) -> Self {
            self.bind(value)
        }
        fn bytes(self, value: &'q [u8]) -> Self {
            self.bind(value)
        }
        fn big(self, value: i64) -> Self {
            self.bind(value)
        }
        fn opt_big(self, value: Option<i64>) -> Self {
            self.bind(value)
        }
        fn flag(self, value: bool) -> Self {
            self.bind(value)
        }
        fn opt_real(self, value: Option<f64>) -> Self {
            self.bind(value)
        }
        fn small(self, value: i16) -> Self {
            self.bind(value)
        }
    };
}
pub(crate) use native_binds;

/// `query` with `job`'s columns as `$1..$9` of the statements that insert a job whole:
/// id, tenant, module, digest, queue, limits, priority, input, max_attempts.
pub(crate) fn bind_job<'q, B: Binds<'q>>(query: B, job: &'q Job) -> B {
    query
        .big(job.id)
        .text(&job.tenant)
        .text(&job.module)
        .text(&job.digest)
        .text(&job.queue)
        .json(&job.limits)
        .small(job.priority)
        .bytes(&job.input)
        .count(job.max_attempts)
}

/// `query` with `s` as `$1..$13` of the schedule upsert: tenant, name, cron, timezone,
/// module, input, queue, priority, max_attempts, limits, catch_up, paused, next_run_at.
pub(crate) fn bind_schedule<'q, B: Binds<'q>>(query: B, s: &'q NewSchedule) -> B {
    query
        .text(&s.tenant)
        .text(&s.name)
        .text(&s.cron)
        .text(&s.timezone)
        .text(&s.module)
        .bytes(&s.input)
        .text(&s.queue)
        .small(s.priority)
        .count(s.max_attempts)
        .json(&s.limits)
        .text(s.catch_up.as_str())
        .flag(s.paused)
        .opt_time(s.next_run_at)
}

/// `query` with `a` as `$1..$7` of a schedule's advance: tenant, name, revision, tick,
/// next_run_at, job_id, error.
pub(crate) fn bind_advance<'q, B: Binds<'q>>(query: B, a: &'q ScheduleAdvance) -> B {
    query
        .text(&a.tenant)
        .text(&a.name)
        .big(a.revision)
        .time(a.tick)
        .opt_time(a.next_run_at)
        .opt_big(a.job_id)
        .opt_text(a.error.as_deref())
}

/// What a listing reads: whole jobs, or only their summaries.
pub trait Listed: Sized + Send + 'static {
    /// The columns it selects: `*`, or [`SUMMARY_COLUMNS`].
    const COLUMNS: &'static str;
    /// One listed row.
    fn from_row(row: &impl Columns) -> Result<Self, StoreError>;
}

impl Listed for Job {
    const COLUMNS: &'static str = "*";
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        job_from_row(row)
    }
}

impl Listed for JobSummary {
    const COLUMNS: &'static str = SUMMARY_COLUMNS;
    fn from_row(row: &impl Columns) -> Result<Self, StoreError> {
        summary_from_row(row)
    }
}

/// A stored count or size, which is never negative.
fn unsigned<T: TryFrom<i64>>(column: &str, value: i64) -> Result<T, StoreError>
where
    T::Error: std::fmt::Display,
{
    T::try_from(value).map_err(|e| decode_err(column, e))
}

/// A whole job (`SELECT *` or `RETURNING *`).
pub(crate) fn job_from_row(row: &impl Columns) -> Result<Job, StoreError> {
    let body = JobBody {
        input: row.bytes("input")?,
        result: row.opt_bytes("result")?,
        log: row.text("log")?,
        log_dropped: unsigned("log_dropped", row.big("log_dropped")?)?,
        worker_id: row.opt_text("worker_id")?,
        lease_expires_at: row.opt_time("lease_expires_at")?,
    };
    Ok(Job::from_parts(summary_from_row(row)?, body))
}

/// The [`SUMMARY_COLUMNS`](super::driver::SUMMARY_COLUMNS) of a job.
pub(crate) fn summary_from_row(row: &impl Columns) -> Result<JobSummary, StoreError> {
    Ok(JobSummary {
        id: row.big("id")?,
        tenant: row.text("tenant")?,
        module: row.text("module")?,
        digest: row.text("digest")?,
        queue: row.text("queue")?,
        priority: row.small("priority")?,
        state: row
            .text("state")?
            .parse()
            .map_err(|e| decode_err("state", e))?,
        run_at: row.time("run_at")?,
        attempt: unsigned("attempt", row.int("attempt")?.into())?,
        max_attempts: unsigned("max_attempts", row.int("max_attempts")?.into())?,
        limits: row.json("limits")?,
        idempotency_key: row.opt_text("idempotency_key")?,
        progress: row.opt_json("progress")?,
        error: row.opt_json("error")?,
        usage: row.opt_json("usage")?,
        history: row.json("history")?,
        created_at: row.time("created_at")?,
        started_at: row.opt_time("started_at")?,
        finished_at: row.opt_time("finished_at")?,
        cancel_requested: row.flag("cancel_requested")?,
        depends_on: row.opt_json("depends_on")?.unwrap_or_default(),
        dependents: unsigned("dependents", row.int("dependents")?.into())?,
        parent_id: row.opt_big("parent_id")?,
        depth: unsigned("depth", row.small("depth")?.into())?,
    })
}

/// A module version (without its bytes).
pub(crate) fn module_from_row(row: &impl Columns) -> Result<Module, StoreError> {
    Ok(Module {
        tenant: row.text("tenant")?,
        name: row.text("name")?,
        version: unsigned("version", row.int("version")?.into())?,
        digest: row.text("digest")?,
        size: unsigned("size", row.big("size")?)?,
        kind: row
            .text("kind")?
            .parse()
            .map_err(|e| decode_err("kind", e))?,
        limits: row.json("limits")?,
        created_at: row.time("created_at")?,
    })
}

/// A schedule row with its last job's state (`last_job_state`).
pub(crate) fn schedule_from_row(row: &impl Columns) -> Result<Schedule, StoreError> {
    Ok(Schedule {
        spec: NewSchedule {
            tenant: row.text("tenant")?,
            name: row.text("name")?,
            cron: row.text("cron")?,
            timezone: row.text("timezone")?,
            module: row.text("module")?,
            input: row.bytes("input")?,
            queue: row.text("queue")?,
            priority: row.small("priority")?,
            max_attempts: unsigned("max_attempts", row.int("max_attempts")?.into())?,
            limits: row.json("limits")?,
            catch_up: CatchUp::from_stored(&row.text("catch_up")?),
            paused: row.flag("paused")?,
            next_run_at: row.opt_time("next_run_at")?,
        },
        revision: row.big("revision")?,
        last_run_at: row.opt_time("last_run_at")?,
        last_job_id: row.opt_big("last_job_id")?,
        last_job_state: row.opt_text("last_job_state")?.and_then(|s| s.parse().ok()),
        last_error: row.opt_text("last_error")?,
        created_at: row.time("created_at")?,
        updated_at: row.time("updated_at")?,
    })
}

/// The columns of `wasmq_tenants` every statement returns, as a literal for `concat!`.
macro_rules! tenant_columns {
    () => {
        "name, max_unfinished_jobs, max_module_bytes, enqueue_rate, enqueue_burst, \
         max_running, max_schedules, updated_at"
    };
}
pub(crate) use tenant_columns;

/// `query` with `$1` the tenant, `$2..$7` the values `change` writes, `$8..$13` whether
/// it writes each, `$14` now: the binds of both drivers' tenant upsert.
pub(crate) fn bind_tenant_change<'q, B: Binds<'q>>(
    query: B,
    tenant: &'q str,
    change: &QuotaChange,
) -> B {
    let v = change.values();
    let count = |n: Option<u64>| n.map(stored_count);
    let mut query = query
        .text(tenant)
        .opt_big(count(v.max_unfinished_jobs))
        .opt_big(count(v.max_module_bytes))
        .opt_real(v.enqueue_rate)
        .opt_big(count(v.enqueue_burst))
        .opt_big(count(v.max_running))
        .opt_big(count(v.max_schedules));
    for touched in change.touched() {
        query = query.flag(touched);
    }
    query.time(Utc::now())
}

/// A `wasmq_tenants` row.
pub(crate) fn tenant_from_row(row: &impl Columns) -> Result<TenantRow, StoreError> {
    let count = |column: &str| {
        row.opt_big(column)?
            .map(|n| u64::try_from(n).map_err(|e| decode_err(column, e)))
            .transpose()
    };
    Ok(TenantRow {
        name: row.text("name")?,
        quotas: Quotas {
            max_unfinished_jobs: count("max_unfinished_jobs")?,
            max_module_bytes: count("max_module_bytes")?,
            enqueue_rate: row.opt_real("enqueue_rate")?,
            enqueue_burst: count("enqueue_burst")?,
            max_running: count("max_running")?,
            max_schedules: count("max_schedules")?,
        },
        updated_at: row.time("updated_at")?,
    })
}

/// The row of a usage count: `unfinished`, `running`, `module_bytes`, `schedules`.
pub(crate) fn usage_from_row(row: &impl Columns) -> Result<TenantUsage, StoreError> {
    let count = |column: &str| u64::try_from(row.big(column)?).map_err(|e| decode_err(column, e));
    Ok(TenantUsage {
        unfinished_jobs: count("unfinished")?,
        running_jobs: count("running")?,
        module_bytes: count("module_bytes")?,
        schedules: count("schedules")?,
    })
}

/// A count or cap as the stores keep it: `u64::MAX` (no real limit) becomes `i64::MAX`.
pub(crate) fn stored_count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A `wasmq_queue_limits` row: `tenant`, `queue`, `max_running`.
pub(crate) fn queue_limit_from_row(row: &impl Columns) -> Result<QueueLimit, StoreError> {
    let max_running = row.big("max_running")?;
    Ok(QueueLimit {
        tenant: row.text("tenant")?,
        queue: row.text("queue")?,
        max_running: u64::try_from(max_running).map_err(|e| decode_err("max_running", e))?,
    })
}
