//! [`PgStore`]: the [`Store`] on PostgreSQL.
//!
//! Every method is one statement (or one short transaction) whatever the batch size: arrays
//! are sent as parameters and expanded with `UNNEST`, so enqueueing 5,000 jobs or finishing
//! 500 costs one round trip. Queries are checked at run time (`sqlx::query`), not at compile
//! time; the conformance suite exercises every one of them against a real server.
//!
//! Notifications: `wasmq_jobs` (payload: a queue name), `wasmq_cancel` (a job id) and
//! `wasmq_finished` (comma-separated job ids) are sent inside the transactions that cause
//! them, so they are delivered on commit only. A background task LISTENs on a dedicated
//! connection and forwards them to [`Store::subscribe`]rs; it reconnects with backoff when
//! the database restarts and then sends [`StoreEvent::Reconnected`].
//!
//! Enqueue and finish also tell this process's subscribers themselves, as soon as their
//! statement has committed: a worker in the same process as the API (`wasmq serve`) wakes
//! without the round trip through the server's listener process and the notification
//! connection, which on an idle two-core machine was half a millisecond each way. Their
//! notifications carry the sending store's [`PgStore`] id (`"<id> <payload>"`, 16 hex
//! digits), so the listener drops its own and other nodes still hear them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Connection, Row};
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

mod settings;
mod warm;
use warm::Warm;

use super::handoff::{self, Handed, Handoff, Reservation, RunAhead};

use super::{
    AttemptRecord, Enqueued, ErrorKind, Finish, Heartbeat, Job, JobBody, JobCount, JobError,
    JobFilter, JobState, JobSummary, Limits, Module, NewJob, NewKey, NewModule, Outcome, Page,
    Principal, Progress, PutModule, RescueReport, Scope, Store, StoreError, StoreEvent, Usage,
    keys,
};

const CHANNEL_JOBS: &str = "wasmq_jobs";
/// [`super::MAX_HISTORY`] as the statements bind it.
const MAX_HISTORY: i32 = super::MAX_HISTORY as i32;
const CHANNEL_CANCEL: &str = "wasmq_cancel";
const CHANNEL_FINISHED: &str = "wasmq_finished";
/// `pg_try_advisory_xact_lock` key of the rescuer ("wasmq" in ASCII).
const RESCUE_LOCK: i64 = 0x0077_6173_6d71;
/// Events buffered per subscriber before it lags.
const EVENT_CAPACITY: usize = 4096;
/// Rows deleted per statement by `prune`.
const PRUNE_BATCH: i64 = 10_000;
/// Jobs promoted per statement by `promote_scheduled`.
const PROMOTE_BATCH: i64 = 10_000;
/// Attempts at an enqueue that raced a concurrent one with the same idempotency key.
const ENQUEUE_TRIES: usize = 5;

/// The PostgreSQL store. Cheap to clone; clones share the pool and the listener, which stops
/// when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    /// Durable commits: enqueue, cancel, modules, rescue, prune.
    pool: Arc<Warm>,
    /// `synchronous_commit = off`: the worker's claim, heartbeat, progress and finish.
    fast: Arc<Warm>,
    events: broadcast::Sender<StoreEvent>,
    /// Prefixed to the notifications this store sends and tells its subscribers itself.
    node: Arc<str>,
    /// This process's idle workers, to hand lone enqueued jobs to (see [`super::handoff`]).
    handoff: Arc<Handoff>,
    /// Job ids drawn ahead, for jobs handed over before they are stored.
    ids: Arc<std::sync::Mutex<IdCache>>,
    _listener: Arc<ListenerTask>,
}

struct ListenerTask(JoinHandle<()>);

/// Job ids drawn from the sequence ahead of use (see [`PgStore::draw_id`]).
#[derive(Default)]
struct IdCache {
    /// In the order drawn.
    ids: std::collections::VecDeque<i64>,
    /// A block is being drawn in the background.
    drawing: bool,
}

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` with a pool of at most `max_connections` (plus one dedicated
    /// notification connection), applies pending migrations (under sqlx's advisory lock, so
    /// nodes starting together are safe) and starts listening for notifications.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        // Generic plans only: the hot statements take arrays, and PostgreSQL's choice
        // between a custom and a generic plan kept custom ones for them, planning every
        // enqueue again (planning cost more than execution for a single-job enqueue;
        // docs/perf-log.md). Every statement is
        // written so its generic plan is right for any batch size; the one that is not
        // (ENQUEUE, with keys) asks for a custom plan itself.
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err)?
            .options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        // Claims, heartbeats, progress and finishes commit without waiting for the WAL
        // flush. A crash can lose the last few of them, and the queue stays correct: a
        // lost claim leaves the job waiting, a lost finish leaves it running until its
        // lease expires and it is run again (at-least-once, and the guarded finish keeps
        // it to one completion). Enqueues, cancels and modules stay fully durable.
        let fast_options = options.options([("synchronous_commit", "off")]);
        // Both pools test a connection when it is taken out and when it goes back; the
        // statements skip both tests while a connection is warm (see `warm`).
        let fast = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(fast_options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "database migration failed");
                StoreError::Database(format!("applying the database migrations failed: {e}"))
            })?;

        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (ready_tx, ready_rx) = oneshot::channel();
        let node: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
        let task = tokio::spawn(listen(
            url.to_owned(),
            events.clone(),
            node.clone(),
            ready_tx,
        ));
        let listener = Arc::new(ListenerTask(task));
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(StoreError::Unavailable(
                    "the notification listener stopped".into(),
                ));
            }
        }
        Ok(PgStore {
            pool: Arc::new(Warm::new(pool)),
            fast: Arc::new(Warm::new(fast)),
            events,
            node,
            handoff: Arc::default(),
            ids: Arc::default(),
            _listener: listener,
        })
    }
}

/// Runs the LISTEN loop until the store is dropped. The first outcome goes to `ready`.
async fn listen(
    url: String,
    events: broadcast::Sender<StoreEvent>,
    node: Arc<str>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut delay = Duration::from_millis(50);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener
                .listen_all([CHANNEL_JOBS, CHANNEL_CANCEL, CHANNEL_FINISHED])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(db_err(e)));
                    return;
                }
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reconnect the notification listener");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                tracing::info!("notification listener reconnected");
                let _ = events.send(StoreEvent::Reconnected);
            }
        }
        delay = Duration::from_millis(50);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(event) =
                        parse_notification(notification.channel(), notification.payload(), &node)
                    {
                        // No receivers is fine: nobody is waiting.
                        let _ = events.send(event);
                    }
                }
                Ok(None) => {
                    tracing::warn!("notification listener lost its connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The event a notification stands for; `None` for one this store (`node`) sent, whose
/// event it has already sent itself.
fn parse_notification(channel: &str, payload: &str, node: &str) -> Option<StoreEvent> {
    let payload = match payload.split_at_checked(node.len()) {
        Some((sender, rest)) if rest.starts_with(' ') && is_node_id(sender) => {
            if sender == node {
                return None;
            }
            &rest[1..]
        }
        // From a store that does not say who it is (a version before node ids).
        _ => payload,
    };
    match channel {
        CHANNEL_JOBS => Some(StoreEvent::JobsAvailable {
            queue: payload.to_owned(),
        }),
        CHANNEL_CANCEL => payload
            .parse()
            .ok()
            .map(|id| StoreEvent::CancelRequested { id }),
        CHANNEL_FINISHED => Some(StoreEvent::JobsFinished {
            ids: payload
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect(),
        }),
        _ => None,
    }
}

/// Events sent to this process's subscribers when dropped, unless disarmed: for a
/// statement whose outcome this process may not have seen (an error after its commit, a
/// dropped future). A needless event costs a subscriber a read; a missed one, a poll
/// interval.
struct EventsOnDrop<'a> {
    events: &'a broadcast::Sender<StoreEvent>,
    pending: Vec<StoreEvent>,
}

impl EventsOnDrop<'_> {
    /// The outcome is known and its events (if any) are sent.
    fn disarm(mut self) {
        self.pending.clear();
    }
}

impl Drop for EventsOnDrop<'_> {
    fn drop(&mut self) {
        for event in self.pending.drain(..) {
            let _ = self.events.send(event);
        }
    }
}

/// Whether `s` looks like a [`PgStore`] id: 16 lowercase hex digits.
fn is_node_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Turns a driver error into a domain error; the detail of unexpected ones goes to the log.
fn db_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
        sqlx::Error::Tls(_) => StoreError::Unavailable("TLS failure".into()),
        sqlx::Error::PoolTimedOut => {
            StoreError::Unavailable("timed out waiting for a database connection".into())
        }
        sqlx::Error::PoolClosed => StoreError::Unavailable("the store was closed".into()),
        sqlx::Error::WorkerCrashed => {
            StoreError::Unavailable("the database connection crashed".into())
        }
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            match code.as_str() {
                "23505" => StoreError::Conflict("it already exists".into()),
                "23503" => StoreError::Conflict(
                    "it refers to something deleted at the same time; try again".into(),
                ),
                "23514" | "22P02" | "22003" => {
                    tracing::warn!(error = %e, "store rejected a value");
                    StoreError::Invalid("a value is out of range".into())
                }
                "40001" | "40P01" | "55P03" | "53300" | "57P01" | "57P02" | "57P03" => {
                    StoreError::Unavailable(format!("the database is busy or restarting ({code})"))
                }
                c if c.starts_with("08") => {
                    StoreError::Unavailable(format!("the database connection failed ({code})"))
                }
                _ => {
                    tracing::error!(error = %e, "database error");
                    StoreError::Database(format!("an internal database error occurred ({code})"))
                }
            }
        }
        _ => {
            tracing::error!(error = %e, "database error");
            StoreError::Database("an internal database error occurred".into())
        }
    }
}

use super::{SUMMARY_COLUMNS, decode_err};

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(|e| decode_err(column, e))
}

fn to_u32(column: &str, value: i32) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|e| decode_err(column, e))
}

fn to_u64(column: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| decode_err(column, e))
}

fn job_from_row(row: &PgRow) -> Result<Job, StoreError> {
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

/// Reads the [`SUMMARY_COLUMNS`].
fn summary_from_row(row: &PgRow) -> Result<JobSummary, StoreError> {
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

fn module_from_row(row: &PgRow) -> Result<Module, StoreError> {
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

fn json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("store types serialize to JSON")
}

/// A progress report as stored, its note made storable ([`super::storable`]).
fn progress_json(progress: &Progress) -> serde_json::Value {
    json(&super::storable_progress(progress))
}

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

/// One statement for the whole batch. Ids are drawn from the sequence up front so each input
/// row knows its job; rows whose idempotency key exists (before the statement, or earlier
/// in the batch) return that job. A row missing from the answer either names a module
/// with no version or raced a concurrent insert of its key (handled by the caller).
const ENQUEUE: &str = r#"
WITH input AS (
    SELECT * FROM UNNEST(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[], $6::bytea[],
        $7::timestamptz[], $8::int[], $9::jsonb[], $10::text[]
    ) WITH ORDINALITY AS t(tenant, module, digest, queue, priority, input, run_at,
                           max_attempts, limits, idempotency_key, ord)
),
resolved AS (
    SELECT i.*,
           COALESCE(i.digest, (SELECT m.digest FROM wasmq_modules m
                               WHERE m.tenant = i.tenant AND m.name = i.module
                               ORDER BY m.version DESC LIMIT 1)) AS pinned,
           row_number() OVER (PARTITION BY i.tenant, i.idempotency_key ORDER BY i.ord)
               AS key_rank
    FROM input i
),
fresh AS (
    SELECT nextval('wasmq_jobs_id_seq') AS id, r.*
    FROM resolved r
    WHERE r.pinned IS NOT NULL
      AND (r.idempotency_key IS NULL
           OR (r.key_rank = 1
               AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j
                               WHERE j.tenant = r.tenant
                                 AND j.idempotency_key = r.idempotency_key)))
    -- `resolved` comes out sorted by key (its window); ids are drawn after this sort,
    -- so they rise in batch order.
    ORDER BY r.ord
),
ins AS (
    INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, priority, input, state,
                            run_at, max_attempts, limits, idempotency_key)
    SELECT id, tenant, module, pinned, queue, priority, input,
           CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END,
           COALESCE(run_at, now()), max_attempts, limits, idempotency_key
    FROM fresh
    ORDER BY ord
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING *
),
notified AS (
    SELECT pg_notify('wasmq_jobs', $11 || ' ' || q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE state = 'available') q
)
SELECT f.ord, false AS duplicate, ins.*
FROM ins JOIN fresh f ON f.id = ins.id
WHERE (SELECT count(*) FROM notified) >= 0
UNION ALL
SELECT r.ord, true AS duplicate, j.*
FROM resolved r
JOIN wasmq_jobs j ON j.tenant = r.tenant AND j.idempotency_key = r.idempotency_key
UNION ALL
SELECT r.ord, true AS duplicate, ins.*
FROM resolved r
JOIN ins ON ins.tenant = r.tenant AND ins.idempotency_key = r.idempotency_key
WHERE r.key_rank > 1
"#;

/// A batch without idempotency keys, every job pinned to a digest: one INSERT, no
/// transaction, all or nothing. What jobs of a batch share is sent once: `$1..$5` are the
/// distinct (tenant, module, digest, queue, limits) "kinds", and each job has its kind's
/// number (from 1) beside its own fields (`$6..$10`), so 10,000 jobs of one module send
/// one digest, not 10,000. No join between the batch and the inserted rows (a generic
/// plan expects ten rows and nested ENQUEUE's joins: 7 s for 5,000 rows). Rows go in
/// array order and come back in insert order, with ids (`nextval` as each row is
/// inserted) rising. Only the id and the statement's time come
/// back: the state, run time and creation time follow from them (see
/// [`Answer::into_enqueued`]); reading back five columns cost a fifth of the statement.
/// Every queue of the batch is woken at commit, even for scheduled jobs: deciding "due"
/// in Rust would use this host's clock, not the database's, and a needless wake-up costs
/// one empty claim, a missed one a poll interval. (The enqueuing process wakes its own
/// subscribers for due jobs only: it knows each job's state from the database's `now()`.)
const ENQUEUE_PINNED: &str = r#"
WITH woken AS (
    SELECT pg_notify('wasmq_jobs', $11 || ' ' || q)
    FROM (SELECT DISTINCT q FROM UNNEST($4::text[]) AS q) w
)
INSERT INTO wasmq_jobs (tenant, module, digest, queue, limits, priority, input, state,
                        run_at, max_attempts)
SELECT ($1::text[])[j.kind], ($2::text[])[j.kind], ($3::text[])[j.kind],
       ($4::text[])[j.kind], ($5::jsonb[])[j.kind], j.priority, j.input,
       CASE WHEN j.run_at > now() THEN 'scheduled' ELSE 'available' END,
       COALESCE(j.run_at, now()), j.max_attempts
FROM UNNEST($6::int[], $7::smallint[], $8::bytea[], $9::timestamptz[], $10::int[])
     AS j(kind, priority, input, run_at, max_attempts)
WHERE (SELECT count(*) FROM woken) >= 0
RETURNING id, now() AS at
"#;

/// A lone due job handed to an idle worker of this process ([`super::handoff`]) that was
/// not done within [`RUN_AHEAD_WAIT`]: written with its id (drawn ahead) as its first
/// attempt, leased to that worker (`$10`, for `$11` seconds), as the claim would have
/// left it. No notification: no other worker should look for it. `$1..$9` as
/// [`bind_row`] binds them.
const ENQUEUE_RUNNING: &str = r#"
INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, limits, priority, input,
                        max_attempts, state, run_at, attempt, started_at, worker_id,
                        lease_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', now(), 1, now(), $10,
        now() + $11::float8 * interval '1 second')
RETURNING *
"#;

/// A lone due job run by an idle worker of this process before it was stored, written
/// with its first attempt's report (`$10..$17`: as [`FINISH`] takes them) in one
/// statement: the row [`ENQUEUE_RUNNING`] and then [`FINISH`] would have left, with one
/// commit instead of three. `$1..$9` as [`bind_row`] binds them; `$18` is the store's
/// id, for the notification.
///
/// Only a released attempt (the job stored `available`) notifies: its queue's workers on
/// every node are woken. A finished job sends no `wasmq_finished`: that is for
/// long-polls, and none can be waiting on a job that did not exist until this commit (a
/// long-poll reads the job first and answers 404 for an unknown id), and a `pg_notify` in
/// the insert's statement adds to its latency (docs/perf-log.md).
const ENQUEUE_FINISHED: &str = r#"
WITH ins AS (
    INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, limits, priority, input,
                            max_attempts, state, attempt, run_at, started_at, finished_at,
                            result, error, history, usage, log, log_dropped, progress)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
            -- A released job goes back as if this attempt never started.
            CASE WHEN $10 = 'available' THEN 0 ELSE 1 END,
            COALESCE($13, now()),
            CASE WHEN $10 = 'available' THEN NULL ELSE now() END,
            CASE WHEN $10 IN ('retryable', 'available') THEN NULL ELSE now() END,
            CASE WHEN $10 = 'completed' THEN $11 END,
            CASE WHEN $10 = 'available' THEN NULL ELSE $12 END,
            CASE WHEN $12 IS NULL THEN '[]'::jsonb
                 ELSE jsonb_build_array($12 || jsonb_build_object('attempt', 1, 'at', now()))
            END,
            $14, $15, $16, $17)
    RETURNING *
),
woken AS (
    SELECT pg_notify('wasmq_jobs', $18 || ' ' || queue) FROM ins WHERE state = 'available'
)
SELECT * FROM ins WHERE (SELECT count(*) FROM woken) >= 0
"#;

/// Job ids drawn ahead per round trip, for jobs run before they are stored.
const ID_BLOCK: usize = 16;

const DRAW_IDS: &str = "SELECT nextval('wasmq_jobs_id_seq') AS id FROM generate_series(1, $1)";

/// How long an enqueue waits for a job it handed over to be run before it stores it
/// running instead (and the job's report goes to the store as a claimed job's does).
const RUN_AHEAD_WAIT: Duration = Duration::from_millis(2);

/// The latest version's digest of each named module (those with a version).
const LATEST_DIGESTS: &str = r#"
SELECT DISTINCT ON (m.tenant, m.name) m.tenant, m.name, m.digest
FROM UNNEST($1::text[], $2::text[]) AS t(tenant, name)
JOIN wasmq_modules m ON m.tenant = t.tenant AND m.name = t.name
ORDER BY m.tenant, m.name, m.version DESC
"#;

/// Which of the named modules have no version.
const MISSING_MODULES: &str = r#"
SELECT DISTINCT t.tenant, t.name
FROM UNNEST($1::text[], $2::text[]) AS t(tenant, name)
WHERE NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.tenant = t.tenant AND m.name = t.name)
"#;

/// The claim: due waiting jobs of one queue, locked with SKIP LOCKED so concurrent
/// claimers never block on or receive the same row, then marked running. Served by the
/// partial index `wasmq_jobs_claim`.
const CLAIM: &str = r#"
WITH due AS (
    SELECT id FROM wasmq_jobs
    WHERE queue = $1
      AND state IN ('available', 'scheduled', 'retryable')
      AND run_at <= now()
    ORDER BY priority DESC, run_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE wasmq_jobs j
SET state = 'running',
    attempt = j.attempt + 1,
    started_at = now(),
    worker_id = $2,
    lease_expires_at = now() + $4::float8 * interval '1 second',
    cancel_requested = false,
    progress = NULL
FROM due
WHERE j.id = due.id
RETURNING j.*
"#;

const HEARTBEAT: &str = r#"
UPDATE wasmq_jobs
SET lease_expires_at = now() + $3::float8 * interval '1 second'
WHERE id = ANY($2::bigint[]) AND state = 'running' AND worker_id = $1
RETURNING id, cancel_requested
"#;

/// Applies reports only to jobs still running at the reported attempt, appends failed
/// attempts to the history, and wakes long-polls of jobs that finished for good (ids in
/// chunks that fit a notification payload).
const FINISH: &str = r#"
WITH f AS (
    SELECT * FROM UNNEST(
        $1::bigint[], $2::int[], $3::text[], $4::bytea[], $5::jsonb[], $6::timestamptz[],
        $7::jsonb[], $8::text[], $9::bigint[], $10::jsonb[]
    ) AS t(id, attempt, state, result, error, retry_at, usage, log, log_dropped, progress)
),
upd AS (
    UPDATE wasmq_jobs j
    SET state = f.state,
        result = CASE WHEN f.state = 'completed' THEN f.result ELSE j.result END,
        error = CASE WHEN f.state = 'available' THEN j.error ELSE f.error END,
        -- A released job goes back as if this attempt never started.
        attempt = CASE WHEN f.state = 'available' THEN j.attempt - 1 ELSE j.attempt END,
        run_at = CASE WHEN f.state = 'available' THEN now() ELSE COALESCE(f.retry_at, j.run_at) END,
        finished_at = CASE WHEN f.state IN ('retryable', 'available') THEN NULL ELSE now() END,
        history = CASE WHEN f.error IS NULL THEN j.history
                       -- At its bound ($12), the second entry goes: the first and the
                       -- latest are kept (see `MAX_HISTORY`).
                       ELSE (CASE WHEN jsonb_array_length(j.history) >= $12
                                  THEN j.history - 1 ELSE j.history END)
                            || jsonb_build_array(f.error
                                || jsonb_build_object('attempt', j.attempt, 'at', now()))
                  END,
        usage = f.usage,
        log = f.log,
        log_dropped = f.log_dropped,
        progress = COALESCE(f.progress, j.progress),
        worker_id = NULL,
        lease_expires_at = NULL
    FROM f
    WHERE j.id = f.id AND j.state = 'running' AND j.attempt = f.attempt
    RETURNING j.id, j.state, j.queue
),
notified AS (
    SELECT pg_notify('wasmq_finished', $11 || ' ' || string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / 300 AS chunk
          FROM upd WHERE state NOT IN ('retryable', 'available')) s
    GROUP BY chunk
),
released AS (
    SELECT pg_notify('wasmq_jobs', $11 || ' ' || queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE state = 'available') q
)
SELECT id, state, queue FROM upd
WHERE (SELECT count(*) FROM notified) + (SELECT count(*) FROM released) >= 0
"#;

const SET_PROGRESS: &str = r#"
UPDATE wasmq_jobs SET progress = $3
WHERE id = $1 AND attempt = $2 AND state = 'running'
"#;

const TRY_RESCUE_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";

/// Expired leases: cancelled if a cancel was requested, retryable at once while attempts
/// remain, failed otherwise; always with a history entry. The messages (`$1` lost, `$2`
/// cancelled) name no worker; the answer does, for the log.
const RESCUE: &str = r#"
WITH lost AS (
    SELECT id, worker_id,
           CASE WHEN cancel_requested THEN 'cancelled'
                WHEN attempt < max_attempts THEN 'retryable'
                ELSE 'failed' END AS next,
           jsonb_build_object(
               'kind', CASE WHEN cancel_requested THEN 'cancelled' ELSE 'lost' END,
               'message', CASE WHEN cancel_requested THEN $2::text ELSE $1::text END)
               AS error
    FROM wasmq_jobs
    WHERE state = 'running' AND lease_expires_at <= now()
    FOR UPDATE SKIP LOCKED
),
upd AS (
    UPDATE wasmq_jobs j
    SET state = lost.next,
        run_at = CASE WHEN lost.next = 'retryable' THEN now() ELSE j.run_at END,
        error = lost.error,
        -- Bounded as FINISH bounds it.
        history = (CASE WHEN jsonb_array_length(j.history) >= $3
                        THEN j.history - 1 ELSE j.history END)
                  || jsonb_build_array(lost.error
                      || jsonb_build_object('attempt', j.attempt, 'at', now())),
        finished_at = CASE WHEN lost.next = 'retryable' THEN NULL ELSE now() END,
        worker_id = NULL,
        lease_expires_at = NULL
    FROM lost
    WHERE j.id = lost.id
    RETURNING j.id, j.state, j.queue, lost.worker_id
),
available AS (
    SELECT pg_notify('wasmq_jobs', q.queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE state = 'retryable') q
),
finished AS (
    SELECT pg_notify('wasmq_finished', string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / 300 AS chunk
          FROM upd WHERE state <> 'retryable') s
    GROUP BY chunk
)
SELECT id, state, worker_id FROM upd
WHERE (SELECT count(*) FROM available) + (SELECT count(*) FROM finished) >= 0
"#;

const PROMOTE: &str = r#"
WITH p AS (
    UPDATE wasmq_jobs SET state = 'available'
    WHERE id IN (SELECT id FROM wasmq_jobs
                 WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
                 ORDER BY run_at
                 LIMIT $1
                 FOR UPDATE SKIP LOCKED)
    RETURNING queue
),
notified AS (
    SELECT pg_notify('wasmq_jobs', q.queue) FROM (SELECT DISTINCT queue FROM p) q
)
SELECT count(*) AS promoted FROM p WHERE (SELECT count(*) FROM notified) >= 0
"#;

/// Waiting → cancelled; running → cancel requested (its worker is told); finished →
/// rewritten unchanged (so the answer is the current row, even under a concurrent finish).
const CANCEL: &str = r#"
WITH upd AS (
    UPDATE wasmq_jobs j
    SET state = CASE WHEN j.state IN ('scheduled', 'available', 'retryable')
                     THEN 'cancelled' ELSE j.state END,
        cancel_requested = j.cancel_requested OR j.state = 'running',
        finished_at = CASE WHEN j.state IN ('scheduled', 'available', 'retryable')
                           THEN now() ELSE j.finished_at END,
        error = CASE WHEN j.state IN ('scheduled', 'available', 'retryable')
                     THEN jsonb_build_object('kind', 'cancelled',
                                             'message', 'cancelled before it ran')
                     ELSE j.error END
    WHERE j.tenant = $1 AND j.id = $2
    RETURNING j.*
),
notified AS (
    SELECT pg_notify(CASE WHEN state = 'running' THEN 'wasmq_cancel'
                          ELSE 'wasmq_finished' END, id::text)
    FROM upd
    WHERE state = 'running' OR (state = 'cancelled' AND finished_at = now())
)
SELECT * FROM upd WHERE (SELECT count(*) FROM notified) >= 0
"#;

const GET: &str = "SELECT * FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

const JOB_STATE: &str = "SELECT state FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

/// The listing: only the filters given are in the text (one prepared statement per
/// combination), so the generic plan of each picks its index. The state is a literal (one
/// of seven fixed words), so each state's range of `wasmq_jobs_list` (tenant, state, id)
/// is read backwards, newest first (migration 0005). Without a state filter the seven
/// states' ranges are each read up to `limit` rows and merged by id (a `Merge Append`):
/// an index in (tenant, id) order would cost every job an index entry at every change of
/// state, which is what the enqueue and the worker spend most of their time on. The
/// price: with a module or queue filter and no state, a state with no matching job is
/// read to the end of its range before the first row comes back.
/// `columns` is `*` or [`SUMMARY_COLUMNS`], a constant.
fn list_query(
    tenant: &str,
    filter: &JobFilter,
    limit: i64,
    columns: &'static str,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let states = match filter.state {
        Some(state) => vec![state],
        None => JobState::ALL.to_vec(),
    };
    let merged = states.len() > 1;
    let mut q = sqlx::QueryBuilder::new(if merged { "SELECT * FROM (" } else { "" });
    for (i, state) in states.into_iter().enumerate() {
        if i > 0 {
            q.push(" UNION ALL ");
        }
        q.push(format_args!(
            "(SELECT {columns} FROM wasmq_jobs WHERE tenant = "
        ));
        q.push_bind(tenant);
        q.push(format_args!(" AND state = '{}'", state.as_str()));
        if let Some(module) = &filter.module {
            q.push(" AND module = ").push_bind(module.as_str());
        }
        if let Some(queue) = &filter.queue {
            q.push(" AND queue = ").push_bind(queue.as_str());
        }
        if let Some(cursor) = filter.cursor {
            q.push(" AND id < ").push_bind(cursor);
        }
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit)
            .push(")");
    }
    if merged {
        q.push(") j ORDER BY id DESC LIMIT ").push_bind(limit);
    }
    q
}

const PRUNE: &str = r#"
WITH d AS (
    DELETE FROM wasmq_jobs
    WHERE id IN (SELECT id FROM wasmq_jobs
                 WHERE state IN ('completed', 'failed', 'cancelled')
                   AND finished_at < now() - $1::float8 * interval '1 second'
                 LIMIT $2
                 FOR UPDATE SKIP LOCKED)
    RETURNING 1
)
SELECT count(*) AS deleted FROM d
"#;

/// Blobs no module version and no unfinished job refers to (optionally only some digests).
/// The job checks only run for blobs no module refers to, and read the waiting jobs
/// through the claim index and the running ones through the lease index (their
/// predicates, written out here): jobs have no digest index (migration 0004).
const SWEEP_BLOBS: &str = r#"
DELETE FROM wasmq_module_blobs b
WHERE ($1::text[] IS NULL OR b.digest = ANY($1))
  AND NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j
                  WHERE j.digest = b.digest AND j.state IN ('available', 'scheduled', 'retryable'))
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j WHERE j.digest = b.digest AND j.state = 'running')
"#;

// ---------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------

const LOCK_MODULE: &str = "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))";

const LATEST_MODULE: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

/// Stores the bytes once per digest, after checking the digest is theirs.
const PUT_BLOB: &str = r#"
WITH chk AS (SELECT encode(sha256($2), 'hex') = $1 AS ok),
ins AS (
    INSERT INTO wasmq_module_blobs (digest, bytes, size)
    SELECT $1, $2, length($2) FROM chk WHERE chk.ok
    ON CONFLICT (digest) DO NOTHING
)
SELECT ok FROM chk
"#;

const INSERT_MODULE: &str = r#"
INSERT INTO wasmq_modules (tenant, name, version, digest, size, kind, limits)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *
"#;

const MODULE_VERSIONS: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC
"#;

const LIST_MODULES: &str = r#"
SELECT DISTINCT ON (name) * FROM wasmq_modules WHERE tenant = $1 ORDER BY name, version DESC
"#;

const DELETE_MODULE: &str = r#"
WITH d AS (DELETE FROM wasmq_modules WHERE tenant = $1 AND name = $2 RETURNING digest)
SELECT DISTINCT digest FROM d
"#;

const MODULE_BYTES: &str = "SELECT bytes FROM wasmq_module_blobs WHERE digest = $1";

/// How a report's outcome is written ([`FINISH`], [`ENQUEUE_FINISHED`]).
struct OutcomeColumns<'a> {
    state: &'static str,
    error: Option<serde_json::Value>,
    result: Option<&'a [u8]>,
    retry_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn outcome_columns(outcome: &Outcome) -> OutcomeColumns<'_> {
    let (state, error) = match outcome {
        Outcome::Complete { .. } => ("completed", None),
        Outcome::Retry { error, .. } => ("retryable", Some(json(&super::bounded(error)))),
        Outcome::Fail { error } => ("failed", Some(json(&super::bounded(error)))),
        Outcome::Release => ("available", None),
        Outcome::Cancelled => (
            "cancelled",
            Some(json(&JobError::new(
                ErrorKind::Cancelled,
                "cancelled while running",
            ))),
        ),
    };
    OutcomeColumns {
        state,
        error,
        result: match outcome {
            Outcome::Complete { result } => Some(result.as_slice()),
            _ => None,
        },
        retry_at: match outcome {
            Outcome::Retry { retry_at, .. } => Some(*retry_at),
            _ => None,
        },
    }
}

/// Whether the database refused a statement, so that it wrote nothing (as opposed to an
/// error whose statement may have committed, such as a broken connection).
fn refused(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::ModuleNotFound { .. }
            | StoreError::Invalid(_)
            | StoreError::Conflict(_)
            | StoreError::NotFound
    )
}

impl PgStore {
    /// One page of a listing of `columns` (`*` or [`SUMMARY_COLUMNS`]), each row decoded
    /// with `decode`. One row more than the page is read, to tell if more follow.
    async fn listing<T: super::Listed>(
        &self,
        tenant: &str,
        filter: &JobFilter,
        columns: &'static str,
        decode: fn(&PgRow) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let limit = super::page_limit(filter);
        let mut query = list_query(tenant, filter, i64::from(limit) + 1, columns);
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = query.build().fetch_all(&mut *conn).await.map_err(db_err)?;
        conn.keep();
        super::decode_page(&rows, limit, decode)
    }

    async fn try_enqueue(&self, jobs: &[NewJob]) -> Result<Option<Vec<Answer>>, StoreError> {
        if jobs.iter().all(|job| job.idempotency_key.is_none()) {
            return self.enqueue_keyless(jobs).await.map(Some);
        }
        let n = jobs.len();
        let columns = Columns::new(jobs, &self.node);
        // A row can lose a race with a concurrent insert of its key while the rest go
        // in, so a batch with keys runs in a transaction that is rolled back and retried,
        // planned for its actual size (a generic plan expects ten rows and nests loops).
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let rows = columns.bind().fetch_all(&mut *tx).await.map_err(db_err)?;

        let mut out: Vec<Option<Enqueued>> = vec![None; n];
        for row in &rows {
            let ord: i64 = get(row, "ord")?;
            let slot = usize::try_from(ord - 1)
                .ok()
                .and_then(|i| out.get_mut(i))
                .ok_or_else(|| decode_err("ord", ord))?;
            *slot = Some(Enqueued {
                job: job_from_row(row)?,
                duplicate: get(row, "duplicate")?,
            });
        }
        if out.iter().all(Option::is_some) {
            tx.commit().await.map_err(db_err)?;
            conn.keep();
            return Ok(Some(
                out.into_iter()
                    .flatten()
                    .map(|e| Answer::Read(Box::new(e)))
                    .collect(),
            ));
        }
        // Some rows got no job: a module without versions, or a key inserted concurrently.
        let unanswered = jobs.iter().zip(&out).filter(|(_, slot)| slot.is_none());
        let missing = missing_module(unanswered.map(|(job, _)| job), &mut *tx).await;
        tx.rollback().await.map_err(db_err)?;
        conn.keep();
        missing?;
        Ok(None)
    }

    /// A batch without idempotency keys: unpinned jobs are pinned to their module's
    /// latest version (one query for the batch's modules), then [`ENQUEUE_PINNED`]. It
    /// reads back only what the store chose (id, state, times); the caller builds each
    /// job from its request.
    async fn enqueue_keyless(&self, jobs: &[NewJob]) -> Result<Vec<Answer>, StoreError> {
        let latest = self.latest_digests(jobs).await?;
        let (first, n) = Pinned::new(jobs, &latest, &self.node)?;
        let mut conn = self.pool.get().await.map_err(db_err)?;
        if n == jobs.len() {
            let answers = first.insert(&mut *conn).await?;
            conn.keep();
            return Ok(answers);
        }
        // More kinds than one statement takes: one statement per run of jobs, in one
        // transaction (all or nothing, one durable commit).
        let mut tx = conn.begin().await.map_err(db_err)?;
        let mut answers = first.insert(&mut *tx).await?;
        let mut done = n;
        while done < jobs.len() {
            let (batch, n) = Pinned::new(&jobs[done..], &latest, &self.node)?;
            answers.extend(batch.insert(&mut *tx).await?);
            done += n;
        }
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(answers)
    }

    /// A lone due job for an idle worker of this process ([`super::handoff`]): it is
    /// handed over before it is stored, with an id drawn ahead, and run while this waits
    /// up to [`RUN_AHEAD_WAIT`]; the job then goes in with its report
    /// ([`ENQUEUE_FINISHED`]), one commit for enqueue, run and finish. A job not done by
    /// then goes in running for the worker ([`ENQUEUE_RUNNING`]), which reports it as any
    /// claimed job once told it is stored. `None`: the worker went away first; the job is
    /// to be enqueued as usual.
    async fn enqueue_handed(
        &self,
        new: NewJob,
        slot: Reservation,
    ) -> Result<Option<Job>, StoreError> {
        let digest = match &new.digest {
            Some(digest) => digest.clone(),
            None => self
                .latest_digests(std::slice::from_ref(&new))
                .await?
                .remove(&(new.tenant.as_str(), new.module.as_str()))
                .ok_or_else(|| StoreError::ModuleNotFound {
                    module: new.module.clone(),
                })?,
        };
        let id = self.draw_id().await?;
        let now = chrono::Utc::now();
        let (worker, lease) = (slot.worker().to_owned(), slot.lease());
        let mut job = Job::just_enqueued(new, id, digest, JobState::Running, now, now);
        job.max_attempts = job.max_attempts.min(i32::MAX as u32);
        job.attempt = 1;
        job.started_at = Some(now);
        job.worker_id = Some(worker.clone());
        job.lease_expires_at = chrono::Duration::from_std(lease).ok().map(|l| now + l);
        let (report_tx, mut report_rx) = oneshot::channel();
        let (committed_tx, committed_rx) = oneshot::channel();
        let handed = Handed {
            job: job.clone(),
            ahead: Some(RunAhead {
                report: report_tx,
                committed: committed_rx,
            }),
        };
        if slot.deliver(handed).is_err() {
            return Ok(None);
        }
        let report = match tokio::time::timeout(RUN_AHEAD_WAIT, &mut report_rx).await {
            Ok(Ok(report)) => Some(report),
            // The worker refused it (it is stopping, or busy since it offered the slot).
            Ok(Err(_)) => return Ok(None),
            Err(_) => {
                // Whatever the worker sends from now on fails, and it waits for the verdict.
                report_rx.close();
                report_rx.try_recv().ok()
            }
        };
        if let Some(report) = report {
            let stored = match self.insert_finished(&job, report.clone()).await {
                // A value the database cannot hold: the job goes in failed, saying so.
                Err(e) if !e.is_transient() => {
                    tracing::error!(job = job.id, error = %e, "the store refused a finish report; failing the job");
                    self.insert_finished(&job, report.refused()).await
                }
                stored => stored,
            };
            self.draw_ids_if_low();
            return stored.map(Some);
        }
        // In a task of its own, so that a caller that goes away (an HTTP client hanging
        // up) cannot stop it between the commit and the verdict.
        let store = self.clone();
        handoff::detached(async move {
            let stored = store.insert_running(&job, &worker, lease).await;
            // Refused by the database: not stored. Anything else (a broken connection)
            // may have been committed: the worker holds the job, and its heartbeat finds
            // it lost if it was not.
            let held = stored.as_ref().map_or_else(|e| !refused(e), |_| true);
            if committed_tx.send(held).is_err()
                && let Ok(job) = &stored
            {
                // The worker stopped meanwhile: the job goes back to its queue.
                handoff::give_back(&store, job).await;
            }
            store.draw_ids_if_low();
            stored.map(Some)
        })
        .await
    }

    /// An id for a new job, from a block drawn ahead ([`ID_BLOCK`] a round trip, on the
    /// durable pool: a sequence's advance is made durable by the commit of the statement
    /// that logged it, so ids handed out here are never drawn again after a crash).
    async fn draw_id(&self) -> Result<i64, StoreError> {
        if let Some(id) = self.ids.lock().expect("ids lock").ids.pop_front() {
            return Ok(id);
        }
        let mut drawn = self.draw_ids().await?.into_iter();
        let id = drawn
            .next()
            .ok_or_else(|| StoreError::Database("the id sequence answered nothing".into()))?;
        self.ids.lock().expect("ids lock").ids.extend(drawn);
        Ok(id)
    }

    /// Draws the next block of ids in the background once half of this one is used. Called
    /// after a hand-off's insert, so that the draw's statement (and its commit) does not
    /// compete with it.
    fn draw_ids_if_low(&self) {
        {
            let mut cache = self.ids.lock().expect("ids lock");
            if cache.drawing || cache.ids.len() >= ID_BLOCK / 2 {
                return;
            }
            cache.drawing = true;
        }
        let store = self.clone();
        tokio::spawn(async move {
            let drawn = store.draw_ids().await;
            let mut cache = store.ids.lock().expect("ids lock");
            cache.drawing = false;
            match drawn {
                Ok(drawn) => cache.ids.extend(drawn),
                Err(e) => tracing::warn!(error = %e, "drawing job ids ahead failed"),
            }
        });
    }

    /// [`ID_BLOCK`] new ids, smallest first.
    async fn draw_ids(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut drawn: Vec<i64> = sqlx::query_scalar(DRAW_IDS)
            .bind(ID_BLOCK as i64)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        drawn.sort_unstable();
        Ok(drawn)
    }

    /// [`ENQUEUE_FINISHED`]: `job` with its first attempt's `report`.
    async fn insert_finished(&self, job: &Job, report: Finish) -> Result<Job, StoreError> {
        let outcome = outcome_columns(&report.outcome);
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = bind_row(ENQUEUE_FINISHED, job)
            .bind(outcome.state)
            .bind(outcome.result)
            .bind(outcome.error)
            .bind(outcome.retry_at)
            .bind(json(&report.usage))
            .bind(super::storable(&report.log).as_ref())
            .bind(clamp_i64(report.log_dropped))
            .bind(report.progress.as_ref().map(progress_json))
            .bind(&*self.node)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let stored = job_from_row(&row)?;
        if stored.state == JobState::Available {
            // Released: this process's workers are told at once (other nodes' by the
            // statement's notification).
            let _ = self.events.send(StoreEvent::JobsAvailable {
                queue: stored.queue.clone(),
            });
        }
        Ok(stored)
    }

    /// [`ENQUEUE_RUNNING`]: `job` as its first attempt, leased to `worker`.
    async fn insert_running(
        &self,
        job: &Job,
        worker: &str,
        lease: Duration,
    ) -> Result<Job, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = bind_row(ENQUEUE_RUNNING, job)
            .bind(worker)
            .bind(seconds(lease))
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        job_from_row(&row)
    }

    /// The latest digest of each module that `jobs` name without a digest, by (tenant,
    /// name). A module with no version is missing from it ([`Pinned::new`] says which).
    async fn latest_digests<'a>(
        &self,
        jobs: &'a [NewJob],
    ) -> Result<HashMap<(&'a str, &'a str), String>, StoreError> {
        let wanted: HashSet<(&str, &str)> = jobs
            .iter()
            .filter(|job| job.digest.is_none())
            .map(|job| (job.tenant.as_str(), job.module.as_str()))
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let (tenants, names): (Vec<&str>, Vec<&str>) = wanted.iter().copied().unzip();
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(LATEST_DIGESTS)
            .bind(&tenants)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let mut found: HashMap<(String, String), String> = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(
                (get(row, "tenant")?, get(row, "name")?),
                get(row, "digest")?,
            );
        }
        Ok(wanted
            .into_iter()
            .filter_map(|(tenant, name)| {
                let digest = found.remove(&(tenant.to_owned(), name.to_owned()))?;
                Some(((tenant, name), digest))
            })
            .collect())
    }
}

/// `sql` ([`ENQUEUE_RUNNING`], [`ENQUEUE_FINISHED`]) with `job`'s id and columns as
/// `$1..$9`: id, tenant, module, digest, queue, limits, priority, input, max_attempts.
fn bind_row<'q>(
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

/// The store's answer to one job of an enqueue, in batch order.
enum Answer {
    /// A new job, of which only what the store chose was read back: its id, its pinned
    /// digest and the time of the statement (its `now()`).
    Inserted {
        id: i64,
        digest: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The whole stored job (a batch with idempotency keys).
    Read(Box<Enqueued>),
}

impl Answer {
    /// The job as stored: for an inserted one, what [`ENQUEUE_PINNED`] wrote (`CASE WHEN
    /// run_at > now() THEN 'scheduled' ELSE 'available'`, `COALESCE(run_at, now())`,
    /// `max_attempts` clamped to the integer column, times in microseconds as sqlx sends
    /// them) and the rest of the request.
    fn into_enqueued(self, job: NewJob) -> Enqueued {
        match self {
            Answer::Inserted { id, digest, at } => {
                let run_at = job.run_at.map(|t| chrono::SubsecRound::trunc_subsecs(t, 6));
                let state = match run_at {
                    Some(t) if t > at => JobState::Scheduled,
                    _ => JobState::Available,
                };
                let job = NewJob {
                    max_attempts: job.max_attempts.min(i32::MAX as u32),
                    ..job
                };
                Enqueued {
                    job: Job::just_enqueued(job, id, digest, state, run_at.unwrap_or(at), at),
                    duplicate: false,
                }
            }
            Answer::Read(enqueued) => *enqueued,
        }
    }
}

/// Fails with [`StoreError::ModuleNotFound`] if one of `jobs` (those the enqueue did not
/// answer) names a module that has no version.
async fn missing_module<'a>(
    jobs: impl Iterator<Item = &'a NewJob>,
    db: impl sqlx::PgExecutor<'_>,
) -> Result<(), StoreError> {
    let (tenants, names): (Vec<&str>, Vec<&str>) = jobs
        .filter(|job| job.digest.is_none())
        .map(|job| (job.tenant.as_str(), job.module.as_str()))
        .unzip();
    let missing = sqlx::query(MISSING_MODULES)
        .bind(&tenants)
        .bind(&names)
        .fetch_all(db)
        .await
        .map_err(db_err)?;
    match missing.first() {
        Some(row) => Err(StoreError::ModuleNotFound {
            module: get(row, "name")?,
        }),
        None => Ok(()),
    }
}

/// A batch of new jobs with idempotency keys as columns: the parameters of [`ENQUEUE`],
/// one array each.
struct Columns<'a> {
    tenants: Vec<&'a str>,
    modules: Vec<&'a str>,
    digests: Vec<Option<&'a str>>,
    queues: Vec<&'a str>,
    priorities: Vec<i16>,
    inputs: Vec<&'a [u8]>,
    run_ats: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    max_attempts: Vec<i32>,
    limits: Vec<serde_json::Value>,
    keys: Vec<Option<&'a str>>,
    /// The enqueuing store's id, for its notifications.
    node: &'a str,
}

impl<'a> Columns<'a> {
    fn new(jobs: &'a [NewJob], node: &'a str) -> Self {
        Columns {
            node,
            tenants: jobs.iter().map(|j| j.tenant.as_str()).collect(),
            modules: jobs.iter().map(|j| j.module.as_str()).collect(),
            digests: jobs.iter().map(|j| j.digest.as_deref()).collect(),
            queues: jobs.iter().map(|j| j.queue.as_str()).collect(),
            priorities: jobs.iter().map(|j| j.priority).collect(),
            inputs: jobs.iter().map(|j| j.input.as_slice()).collect(),
            run_ats: jobs.iter().map(|j| j.run_at).collect(),
            max_attempts: jobs.iter().map(|j| clamp_i32(j.max_attempts)).collect(),
            limits: jobs.iter().map(|j| json(&j.limits)).collect(),
            keys: jobs.iter().map(|j| j.idempotency_key.as_deref()).collect(),
        }
    }

    fn bind(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(ENQUEUE)
            .bind(&self.tenants)
            .bind(&self.modules)
            .bind(&self.digests)
            .bind(&self.queues)
            .bind(&self.priorities)
            .bind(&self.inputs)
            .bind(&self.run_ats)
            .bind(&self.max_attempts)
            .bind(&self.limits)
            .bind(&self.keys)
            .bind(self.node)
    }
}

/// The distinct (tenant, module, digest, queue, limits) of a batch, one array each.
#[derive(Default)]
struct Kinds<'a> {
    tenants: Vec<&'a str>,
    modules: Vec<&'a str>,
    digests: Vec<&'a str>,
    queues: Vec<&'a str>,
    limits: Vec<serde_json::Value>,
}

/// A keyless, pinned batch as the parameters of [`ENQUEUE_PINNED`].
struct Pinned<'a> {
    kinds: Kinds<'a>,
    /// Per job: its kind's number, from 1 (a PostgreSQL array subscript).
    kind: Vec<i32>,
    priorities: Vec<i16>,
    inputs: Vec<&'a [u8]>,
    run_ats: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    max_attempts: Vec<i32>,
    /// The enqueuing store's id, for its notifications.
    node: &'a str,
}

/// At most this many kinds go in one [`ENQUEUE_PINNED`]: PostgreSQL finds an array's
/// k-th text or JSON element by walking the k-1 before it, so a batch whose jobs all
/// differ would cost jobs × kinds. A batch with more is split (see
/// [`PgStore::enqueue_keyless`]).
const MAX_KINDS: usize = 64;

impl<'a> Pinned<'a> {
    /// The longest prefix of `jobs` with at most [`MAX_KINDS`] kinds, and its length;
    /// [`StoreError::ModuleNotFound`] for the first job whose module has no version.
    fn new(
        jobs: &'a [NewJob],
        latest: &'a HashMap<(&'a str, &'a str), String>,
        node: &'a str,
    ) -> Result<(Self, usize), StoreError> {
        type Kind<'k> = (&'k str, &'k str, &'k str, &'k str, &'k Limits);
        let mut numbers: HashMap<Kind<'a>, i32> = HashMap::new();
        let mut kinds = Kinds::default();
        let mut kind = Vec::with_capacity(jobs.len());
        // The kind of the job before: a batch's jobs mostly share one, and comparing with
        // it is cheaper than hashing every job's kind.
        let mut last: Option<(Kind<'a>, i32)> = None;
        for job in jobs {
            let digest = match &job.digest {
                Some(d) => d.as_str(),
                None => latest
                    .get(&(job.tenant.as_str(), job.module.as_str()))
                    .ok_or_else(|| StoreError::ModuleNotFound {
                        module: job.module.clone(),
                    })?
                    .as_str(),
            };
            let key = (
                job.tenant.as_str(),
                job.module.as_str(),
                digest,
                job.queue.as_str(),
                &job.limits,
            );
            if let Some((last_key, number)) = last
                && last_key == key
            {
                kind.push(number);
                continue;
            }
            if numbers.len() == MAX_KINDS && !numbers.contains_key(&key) {
                break;
            }
            let next = i32::try_from(numbers.len() + 1).unwrap_or(i32::MAX);
            let number = *numbers.entry(key).or_insert_with(|| {
                kinds.tenants.push(key.0);
                kinds.modules.push(key.1);
                kinds.digests.push(key.2);
                kinds.queues.push(key.3);
                kinds.limits.push(json(key.4));
                next
            });
            last = Some((key, number));
            kind.push(number);
        }
        let jobs = &jobs[..kind.len()];
        let batch = Pinned {
            kinds,
            kind,
            priorities: jobs.iter().map(|j| j.priority).collect(),
            inputs: jobs.iter().map(|j| j.input.as_slice()).collect(),
            run_ats: jobs.iter().map(|j| j.run_at).collect(),
            max_attempts: jobs.iter().map(|j| clamp_i32(j.max_attempts)).collect(),
            node,
        };
        Ok((batch, jobs.len()))
    }

    /// Runs the statement and answers each of the batch's jobs.
    async fn insert(&self, db: impl sqlx::PgExecutor<'_>) -> Result<Vec<Answer>, StoreError> {
        let rows = self.bind().fetch_all(db).await.map_err(db_err)?;
        // All or nothing (one statement): a short answer would be a bug, so it is an error.
        if rows.len() != self.kind.len() {
            return Err(StoreError::Database(format!(
                "{} of {} jobs were enqueued, but the answers do not line up with the batch",
                rows.len(),
                self.kind.len()
            )));
        }
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let at: chrono::DateTime<chrono::Utc> = get(first, "at")?;
        rows.iter()
            .zip(&self.kind)
            .map(|(row, kind)| {
                Ok(Answer::Inserted {
                    id: get(row, "id")?,
                    digest: self.kinds.digests[(*kind - 1) as usize].to_owned(),
                    at,
                })
            })
            .collect()
    }

    fn bind(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(ENQUEUE_PINNED)
            .bind(&self.kinds.tenants)
            .bind(&self.kinds.modules)
            .bind(&self.kinds.digests)
            .bind(&self.kinds.queues)
            .bind(&self.kinds.limits)
            .bind(&self.kind)
            .bind(&self.priorities)
            .bind(&self.inputs)
            .bind(&self.run_ats)
            .bind(&self.max_attempts)
            .bind(self.node)
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    async fn enqueue(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        super::check_attempts(&jobs)?;
        if let Some(slot) = self.handoff.reserve_for(&jobs)
            && let Some(job) = self.enqueue_handed(jobs[0].clone(), slot).await?
        {
            return Ok(vec![Enqueued {
                job,
                duplicate: false,
            }]);
        }
        // If the outcome is unknown (an error after the commit may have gone through, or
        // the caller dropped this future), this process's workers of the batch's queues
        // are woken anyway: the listener drops this store's own notifications.
        let unsure = EventsOnDrop {
            events: &self.events,
            pending: jobs
                .iter()
                .map(|job| job.queue.as_str())
                .collect::<HashSet<_>>()
                .into_iter()
                .map(|queue| StoreEvent::JobsAvailable {
                    queue: queue.to_owned(),
                })
                .collect(),
        };
        for _ in 0..ENQUEUE_TRIES {
            let answers = match self.try_enqueue(&jobs).await {
                Ok(answers) => answers,
                // Refused before anything was written.
                Err(e) if refused(&e) => {
                    unsure.disarm();
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if let Some(answers) = answers {
                let enqueued: Vec<Enqueued> = answers
                    .into_iter()
                    .zip(jobs)
                    .map(|(answer, job)| answer.into_enqueued(job))
                    .collect();
                // Committed: wake this process's workers of queues with a job due now
                // (the listener drops this store's own notifications).
                let due: HashSet<&str> = enqueued
                    .iter()
                    .filter(|e| !e.duplicate && e.job.state == JobState::Available)
                    .map(|e| e.job.queue.as_str())
                    .collect();
                for queue in due {
                    let _ = self.events.send(StoreEvent::JobsAvailable {
                        queue: queue.to_owned(),
                    });
                }
                unsure.disarm();
                return Ok(enqueued);
            }
        }
        unsure.disarm();
        Err(StoreError::Conflict(
            "the batch kept changing under concurrent enqueues (idempotency keys) or module \
             uploads; try again"
                .into(),
        ))
    }

    async fn claim(
        &self,
        queue: &str,
        worker_id: &str,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Job>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let rows = sqlx::query(CLAIM)
            .bind(queue)
            .bind(worker_id)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .bind(seconds(lease))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let mut jobs = rows
            .iter()
            .map(job_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        super::sort_claimed(&mut jobs);
        Ok(jobs)
    }

    async fn heartbeat(
        &self,
        worker_id: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Heartbeat, StoreError> {
        if ids.is_empty() {
            return Ok(Heartbeat::default());
        }
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let rows = sqlx::query(HEARTBEAT)
            .bind(worker_id)
            .bind(ids)
            .bind(seconds(lease))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let held = rows
            .iter()
            .map(|row| {
                Ok((
                    get::<i64>(row, "id")?,
                    get::<bool>(row, "cancel_requested")?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Heartbeat::from_held(ids, held))
    }

    async fn finish(&self, items: Vec<Finish>) -> Result<Vec<bool>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        // One report per job: a second report of the same job in the batch is refused.
        let mut seen = HashSet::with_capacity(items.len());
        let first: Vec<bool> = items.iter().map(|item| seen.insert(item.id)).collect();
        let n = seen.len();
        let mut ids = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        let mut results: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut retry_ats = Vec::with_capacity(n);
        let mut usages = Vec::with_capacity(n);
        let mut logs = Vec::with_capacity(n);
        let mut log_dropped = Vec::with_capacity(n);
        let mut progress = Vec::with_capacity(n);
        for item in items
            .iter()
            .zip(&first)
            .filter(|(_, f)| **f)
            .map(|(i, _)| i)
        {
            let outcome = outcome_columns(&item.outcome);
            ids.push(item.id);
            attempts.push(clamp_i32(item.attempt));
            states.push(outcome.state);
            results.push(outcome.result);
            errors.push(outcome.error);
            retry_ats.push(outcome.retry_at);
            usages.push(json(&item.usage));
            logs.push(super::storable(&item.log));
            log_dropped.push(clamp_i64(item.log_dropped));
            progress.push(item.progress.as_ref().map(progress_json));
        }
        let mut conn = self.fast.get().await.map_err(db_err)?;
        // If the outcome is unknown (an error after the commit, a dropped future), this
        // process's long-polls of these jobs look again.
        let unsure = EventsOnDrop {
            events: &self.events,
            pending: vec![StoreEvent::JobsFinished { ids: ids.clone() }],
        };
        let rows = sqlx::query(FINISH)
            .bind(&ids)
            .bind(&attempts)
            .bind(&states)
            .bind(&results)
            .bind(&errors)
            .bind(&retry_ats)
            .bind(&usages)
            .bind(&logs)
            .bind(&log_dropped)
            .bind(&progress)
            .bind(&*self.node)
            .bind(MAX_HISTORY)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let mut applied = HashSet::with_capacity(rows.len());
        let mut finished = Vec::new();
        let mut released = HashSet::new();
        for row in &rows {
            let id: i64 = get(row, "id")?;
            applied.insert(id);
            match get::<String>(row, "state")?.as_str() {
                "retryable" => {}
                "available" => {
                    released.insert(get::<String>(row, "queue")?);
                }
                _ => finished.push(id),
            }
        }
        // What FINISH notified, for this process (the listener drops this store's own).
        if !finished.is_empty() {
            let _ = self.events.send(StoreEvent::JobsFinished { ids: finished });
        }
        for queue in released {
            let _ = self.events.send(StoreEvent::JobsAvailable { queue });
        }
        unsure.disarm();
        Ok(items
            .iter()
            .zip(first)
            .map(|(item, first)| first && applied.contains(&item.id))
            .collect())
    }

    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: Progress,
    ) -> Result<bool, StoreError> {
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let done = sqlx::query(SET_PROGRESS)
            .bind(id)
            .bind(clamp_i32(attempt))
            .bind(progress_json(&progress))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(done.rows_affected() == 1)
    }

    async fn rescue(&self) -> Result<RescueReport, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let locked: bool = sqlx::query_scalar(TRY_RESCUE_LOCK)
            .bind(RESCUE_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !locked {
            tx.rollback().await.map_err(db_err)?;
            conn.keep();
            return Ok(RescueReport {
                skipped: true,
                ..RescueReport::default()
            });
        }
        let rows = sqlx::query(RESCUE)
            .bind(super::LOST_MESSAGE)
            .bind(super::LOST_CANCELLED_MESSAGE)
            .bind(MAX_HISTORY)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        let mut report = RescueReport::default();
        let mut workers = super::LostWorkers::default();
        for row in &rows {
            let id: i64 = get(row, "id")?;
            let state: String = get(row, "state")?;
            workers.add(get(row, "worker_id")?, id);
            match state.parse::<JobState>()? {
                JobState::Retryable => report.retried.push(id),
                JobState::Cancelled => report.cancelled.push(id),
                _ => report.failed.push(id),
            }
        }
        workers.log();
        for ids in [
            &mut report.retried,
            &mut report.failed,
            &mut report.cancelled,
        ] {
            ids.sort_unstable();
        }
        if !rows.is_empty() {
            tracing::info!(
                retried = report.retried.len(),
                failed = report.failed.len(),
                cancelled = report.cancelled.len(),
                "rescued jobs whose worker stopped renewing its lease"
            );
        }
        Ok(report)
    }

    async fn promote_scheduled(&self) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut conn = self.pool.get().await.map_err(db_err)?;
            let promoted: i64 = sqlx::query_scalar(PROMOTE)
                .bind(PROMOTE_BATCH)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            conn.keep();
            total += to_u64("promoted", promoted)?;
            if promoted < PROMOTE_BATCH {
                return Ok(total);
            }
        }
    }

    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(CANCEL)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(job_from_row).transpose()
    }

    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(GET)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list(&self, tenant: &str, filter: &JobFilter) -> Result<Page, StoreError> {
        self.listing(tenant, filter, "*", job_from_row).await
    }

    async fn list_summaries(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Page<JobSummary>, StoreError> {
        (self.listing(tenant, filter, SUMMARY_COLUMNS, summary_from_row)).await
    }

    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let state: Option<String> = sqlx::query_scalar(JOB_STATE)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        super::decode_state(state)
    }

    async fn prune(&self, older_than: Duration) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut conn = self.pool.get().await.map_err(db_err)?;
            let deleted: i64 = sqlx::query_scalar(PRUNE)
                .bind(seconds(older_than))
                .bind(PRUNE_BATCH)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)?;
            conn.keep();
            total += to_u64("deleted", deleted)?;
            if deleted < PRUNE_BATCH {
                break;
            }
        }
        // Losing a race with an upload of the same bytes is harmless: the next prune sweeps.
        let mut conn = self.pool.get().await.map_err(db_err)?;
        match sqlx::query(SWEEP_BLOBS)
            .bind(None::<Vec<String>>)
            .execute(&mut *conn)
            .await
        {
            Ok(_) => conn.keep(),
            Err(e) => tracing::warn!(error = %e, "sweeping unused module bytes failed"),
        }
        Ok(total)
    }

    fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.events.subscribe()
    }

    fn handoff(&self) -> Option<&Arc<Handoff>> {
        Some(&self.handoff)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A round trip to the server even on a warm connection.
        let mut conn = self.pool.get().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn put_module(&self, module: NewModule) -> Result<PutModule, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        sqlx::query(LOCK_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let latest = sqlx::query(LATEST_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(module_from_row)
            .transpose()?;
        if let Some(latest) = &latest
            && latest.digest == module.digest
            && latest.kind == module.kind
            && latest.limits == module.limits
        {
            tx.rollback().await.map_err(db_err)?;
            conn.keep();
            return Ok(PutModule {
                module: latest.clone(),
                created: false,
            });
        }
        let ok: bool = sqlx::query_scalar(PUT_BLOB)
            .bind(&module.digest)
            .bind(&module.bytes)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !ok {
            return Err(StoreError::Invalid(format!(
                "digest {} is not the sha256 of the module bytes",
                module.digest
            )));
        }
        let version = latest.map_or(1, |m| m.version.saturating_add(1));
        let row = sqlx::query(INSERT_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .bind(clamp_i32(version))
            .bind(&module.digest)
            .bind(i64::try_from(module.bytes.len()).unwrap_or(i64::MAX))
            .bind(module.kind.as_str())
            .bind(Json(&module.limits))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = module_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(PutModule {
            module: stored,
            created: true,
        })
    }

    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(LATEST_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(module_from_row).transpose()
    }

    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(MODULE_VERSIONS)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(module_from_row).collect()
    }

    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(LIST_MODULES)
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(module_from_row).collect()
    }

    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let digests: Vec<String> = sqlx::query_scalar(DELETE_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        if digests.is_empty() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(SWEEP_BLOBS)
            .bind(Some(&digests))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let bytes = sqlx::query_scalar(MODULE_BYTES)
            .bind(digest)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(bytes)
    }

    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(
            "SELECT queue, state, count(*) AS n FROM wasmq_jobs GROUP BY queue, state ORDER BY 1, 2",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        rows.iter()
            .map(|row| {
                Ok(JobCount {
                    queue: get(row, "queue")?,
                    state: get::<String>(row, "state")?.parse()?,
                    count: to_u64("n", get(row, "n")?)?,
                })
            })
            .collect()
    }

    async fn create_key(
        &self,
        tenant: &str,
        name: Option<&str>,
        scopes: &[Scope],
    ) -> Result<NewKey, StoreError> {
        let (id, key, hash, scopes) = keys::new_key(tenant, scopes)?;
        let mut conn = self.pool.get().await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO wasmq_api_keys (id, tenant, name, hash, scopes) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&id)
        .bind(tenant)
        .bind(name)
        .bind(&hash)
        .bind(&scopes)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        Ok(NewKey { id, key })
    }

    async fn authenticate(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        let Some((id, secret)) = keys::parse(key) else {
            return Ok(None);
        };
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(
            "SELECT tenant, hash, scopes FROM wasmq_api_keys WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        let Some(row) = row else { return Ok(None) };
        let scopes: Vec<String> = get(&row, "scopes")?;
        Ok(keys::principal(
            id,
            secret,
            get(&row, "tenant")?,
            &get::<String>(&row, "hash")?,
            &scopes,
        ))
    }

    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let done = sqlx::query(
            "UPDATE wasmq_api_keys SET revoked_at = now() \
             WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL",
        )
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
        conn.keep();
        Ok(done.rows_affected() > 0)
    }

    // Module settings: see `settings.rs`.

    async fn module_settings(
        &self,
        tenant: &str,
        name: &str,
    ) -> Result<super::ModuleSettings, StoreError> {
        self.settings_of(tenant, name).await
    }

    async fn allowed_hosts(
        &self,
        tenant: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, StoreError> {
        self.allowed_hosts_of(tenant).await
    }

    async fn set_allowed_hosts(
        &self,
        tenant: &str,
        name: &str,
        hosts: &[String],
    ) -> Result<(), StoreError> {
        self.put_allowed_hosts(tenant, name, hosts).await
    }

    async fn set_module_config(
        &self,
        tenant: &str,
        name: &str,
        values: &std::collections::BTreeMap<String, String>,
        secrets: &std::collections::BTreeMap<String, String>,
    ) -> Result<(), StoreError> {
        self.put_config(tenant, name, values, secrets).await
    }

    async fn delete_module_settings(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        self.forget_settings(tenant, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_become_events() {
        const ME: &str = "00000000000000aa";
        let emails = Some(StoreEvent::JobsAvailable {
            queue: "emails".into(),
        });
        assert_eq!(parse_notification(CHANNEL_JOBS, "emails", ME), emails);
        // Another node's: its id is stripped.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "0123456789abcdef emails", ME),
            emails
        );
        assert_eq!(
            parse_notification(CHANNEL_CANCEL, "42", ME),
            Some(StoreEvent::CancelRequested { id: 42 })
        );
        assert_eq!(
            parse_notification(CHANNEL_FINISHED, "0123456789abcdef 1,2,3", ME),
            Some(StoreEvent::JobsFinished { ids: vec![1, 2, 3] })
        );
        assert_eq!(parse_notification("other", "x", ME), None);
        // This store's own: it has told its subscribers already.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "00000000000000aa emails", ME),
            None
        );
        assert_eq!(
            parse_notification(CHANNEL_FINISHED, "00000000000000aa 7", ME),
            None
        );
        // A queue name with a space that is not an id stays whole.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "weekly reports", ME),
            Some(StoreEvent::JobsAvailable {
                queue: "weekly reports".into()
            })
        );
    }
}
