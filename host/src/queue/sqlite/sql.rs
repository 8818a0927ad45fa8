//! The SQL text of the SQLite driver. Times are INTEGER unix microseconds bound by the
//! caller (one "now" per call), JSON is TEXT; the single writer makes each statement
//! atomic without locks of its own.

use crate::queue::JobFilter;

// ---------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------

/// The latest version's digest of a module (the pin of a job enqueued without one).
pub(super) const LATEST_DIGEST: &str = r#"
SELECT digest FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

pub(super) const BY_IDEMPOTENCY_KEY: &str = r#"
SELECT * FROM wasmq_jobs WHERE tenant = $1 AND idempotency_key = $2
"#;

/// On the idempotency index.
pub(super) const JOB_ID_BY_KEY: &str =
    "SELECT id FROM wasmq_jobs WHERE tenant = $1 AND idempotency_key = $2";

pub(super) const INSERT_JOB: &str = r#"
INSERT INTO wasmq_jobs (tenant, module, digest, queue, priority, input, state, run_at,
                        max_attempts, limits, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING *
"#;

/// The claim: due waiting jobs of one queue, fairly between its tenants, marked running.
/// The single writer makes it atomic. `$tenants` names the tenants to serve; each that
/// has not paused the queue offers its share of `$5` in its own priority order (the
/// partial index `wasmq_jobs_claim`, led by queue and tenant), and the claim takes the
/// tenants' first jobs, then their second ones, and so on (`policy::claim_order`).
/// Each tenant takes at most the room its running-job caps leave: its `max_running` (its
/// row's, else `$6`, the server's default) and its limit of the queue, less its running
/// jobs, counted only when capped (the listing index `(tenant, state, id)`).
macro_rules! claim {
    ($tenants:literal) => {
        concat!(
            "WITH RECURSIVE tenants(tenant) AS (",
            $tenants,
            r#"),
share(n) AS (
    SELECT ($5 + max(1, count(*)) - 1) / max(1, count(*)) FROM tenants WHERE tenant IS NOT NULL
),
candidates AS (
    SELECT j.id, j.tenant, j.priority, j.run_at
    FROM tenants t
    JOIN wasmq_jobs j ON j.id IN (
        SELECT id FROM wasmq_jobs
        WHERE queue = $4 AND tenant = t.tenant
          AND state IN ('available', 'scheduled', 'retryable')
          AND run_at <= $1
          AND NOT EXISTS (SELECT 1 FROM wasmq_queue_pauses p
                          WHERE p.queue = $4 AND p.tenant = t.tenant)
        ORDER BY priority DESC, run_at, id
        LIMIT (SELECT n FROM share))
    WHERE t.tenant IS NOT NULL
),
caps(tenant, cap, queue_cap) AS (
    SELECT t.tenant,
           coalesce((SELECT w.max_running FROM wasmq_tenants w WHERE w.name = t.tenant), $6),
           (SELECT l.max_running FROM wasmq_queue_limits l
            WHERE l.queue = $4 AND l.tenant = t.tenant)
    FROM tenants t WHERE t.tenant IS NOT NULL
),
rooms(tenant, n) AS (
    SELECT c.tenant, min(
        CASE WHEN c.cap IS NULL THEN $5
             ELSE c.cap - (SELECT count(*) FROM wasmq_jobs r
                           WHERE r.tenant = c.tenant AND r.state = 'running') END,
        CASE WHEN c.queue_cap IS NULL THEN $5
             ELSE c.queue_cap - (SELECT count(*) FROM wasmq_jobs r
                                 WHERE r.tenant = c.tenant AND r.state = 'running'
                                   AND r.queue = $4) END)
    FROM caps c
)
UPDATE wasmq_jobs
SET state = 'running',
    attempt = attempt + 1,
    started_at = $1,
    worker_id = $2,
    lease_expires_at = $3,
    cancel_requested = 0,
    progress = NULL
WHERE id IN (SELECT id FROM (
                 SELECT c.id, c.run_at, r.n AS room,
                        row_number() OVER (PARTITION BY c.tenant
                                           ORDER BY c.priority DESC, c.run_at, c.id) AS rank
                 FROM candidates c JOIN rooms r ON r.tenant = c.tenant)
             WHERE rank <= room
             ORDER BY rank, run_at, id
             LIMIT $5)
RETURNING *
"#
        )
    };
}

/// The claim for every tenant: the tenants with waiting jobs in the queue, walked one
/// index probe each.
pub(super) const CLAIM: &str = claim!(
    r#"
    SELECT (SELECT tenant FROM wasmq_jobs
            WHERE queue = $4 AND state IN ('available', 'scheduled', 'retryable')
            ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT w.tenant FROM wasmq_jobs w
            WHERE w.queue = $4 AND w.state IN ('available', 'scheduled', 'retryable')
              AND w.tenant > t.tenant
            ORDER BY w.tenant LIMIT 1)
    FROM tenants t
    WHERE t.tenant IS NOT NULL
"#
);

/// The claim for one tenant (`$7`), for workers that serve only it.
pub(super) const CLAIM_TENANT: &str = claim!("SELECT $7");

/// A job handed to an idle worker of this process, stored as its first attempt (as the
/// claim would have left it): `$1..$9` as `queue::rows::bind_job` binds them, `$10` the worker,
/// `$11` its lease's end, `$12` now.
pub(super) const INSERT_RUNNING: &str = r#"
INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, limits, priority, input,
                        max_attempts, state, run_at, attempt, started_at, worker_id,
                        lease_expires_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'running', $12, 1, $12, $10, $11, $12)
RETURNING *
"#;

/// A job run by an idle worker of this process before it was stored, written with its
/// first attempt's report: the row [`INSERT_RUNNING`] and then [`FINISH`] would have
/// left. `$1..$9` as `queue::rows::bind_job` binds them; `$10` the state, `$11` the result, `$12`
/// the error, `$13` the retry time, `$14..$17` usage, log, log dropped and progress,
/// `$18` now, `$19` the history.
pub(super) const INSERT_FINISHED: &str = r#"
INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, limits, priority, input,
                        max_attempts, state, attempt, run_at, started_at, finished_at,
                        result, error, history, usage, log, log_dropped, progress, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
        -- A released job goes back as if this attempt never started.
        CASE WHEN $10 = 'available' THEN 0 ELSE 1 END,
        COALESCE($13, $18),
        CASE WHEN $10 = 'available' THEN NULL ELSE $18 END,
        CASE WHEN $10 IN ('retryable', 'available') THEN NULL ELSE $18 END,
        CASE WHEN $10 = 'completed' THEN $11 END,
        CASE WHEN $10 = 'available' THEN NULL ELSE $12 END,
        $19, $14, $15, $16, $17, $18)
RETURNING *
"#;

/// Makes sure the job id sequence has its row (it has none before the first insert).
pub(super) const SEQUENCE_ROW: &str = r#"
INSERT INTO sqlite_sequence (name, seq)
SELECT 'wasmq_jobs', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'wasmq_jobs')
"#;

/// Moves the job id sequence past `$1` ids: they are reserved (AUTOINCREMENT never hands
/// out an id at or below the sequence), and the answer is the last of them.
pub(super) const RESERVE_IDS: &str = r#"
UPDATE sqlite_sequence SET seq = max(seq, (SELECT coalesce(max(id), 0) FROM wasmq_jobs)) + $1
WHERE name = 'wasmq_jobs'
RETURNING seq
"#;

/// `$2` is a JSON array of job ids.
pub(super) const HEARTBEAT: &str = r#"
UPDATE wasmq_jobs
SET lease_expires_at = $3
WHERE id IN (SELECT value FROM json_each($2)) AND state = 'running' AND worker_id = $1
RETURNING id, cancel_requested
"#;

/// Applies one report, only to a job still running at the reported attempt; `$8` is the
/// history entry to append (or NULL), `$13` the history's bound: at it, the second entry
/// goes, so the first and the latest are kept (see `MAX_HISTORY`).
pub(super) const FINISH: &str = r#"
UPDATE wasmq_jobs
SET state = $3,
    result = CASE WHEN $3 = 'completed' THEN $4 ELSE result END,
    error = CASE WHEN $3 = 'available' THEN error ELSE $5 END,
    -- A released job goes back as if this attempt never started.
    attempt = CASE WHEN $3 = 'available' THEN attempt - 1 ELSE attempt END,
    run_at = CASE WHEN $3 = 'available' THEN $6 ELSE COALESCE($7, run_at) END,
    finished_at = CASE WHEN $3 IN ('retryable', 'available') THEN NULL ELSE $6 END,
    history = CASE WHEN $8 IS NULL THEN history
                   ELSE json_insert(CASE WHEN json_array_length(history) >= $13
                                         THEN json_remove(history, '$[1]') ELSE history END,
                                    '$[#]', json($8)) END,
    usage = $9,
    log = $10,
    log_dropped = $11,
    progress = COALESCE($12, progress),
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = $1 AND state = 'running' AND attempt = $2
RETURNING id, state, queue, dependents
"#;

pub(super) const SET_PROGRESS: &str = r#"
UPDATE wasmq_jobs SET progress = $3
WHERE id = $1 AND attempt = $2 AND state = 'running'
"#;

/// Running jobs whose lease expired.
pub(super) const EXPIRED: &str = r#"
SELECT id, attempt, max_attempts, cancel_requested, worker_id, queue, dependents FROM wasmq_jobs
WHERE state = 'running' AND lease_expires_at <= $1
"#;

/// Takes back one expired job: `$2` is its next state, `$4` its error, `$5` the history
/// entry, `$6` the history's bound (as [`FINISH`] keeps it).
pub(super) const RESCUE_ONE: &str = r#"
UPDATE wasmq_jobs
SET state = $2,
    run_at = CASE WHEN $2 = 'retryable' THEN $3 ELSE run_at END,
    error = $4,
    history = json_insert(CASE WHEN json_array_length(history) >= $6
                               THEN json_remove(history, '$[1]') ELSE history END,
                          '$[#]', json($5)),
    finished_at = CASE WHEN $2 = 'retryable' THEN NULL ELSE $3 END,
    worker_id = NULL,
    lease_expires_at = NULL
WHERE id = $1 AND state = 'running'
"#;

pub(super) const PROMOTE: &str = r#"
UPDATE wasmq_jobs SET state = 'available'
WHERE id IN (SELECT id FROM wasmq_jobs
             WHERE state IN ('scheduled', 'retryable') AND run_at <= $1
             ORDER BY run_at
             LIMIT $2)
RETURNING queue
"#;

pub(super) const JOB_STATE: &str = "SELECT state FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

pub(super) const CANCEL_WAITING: &str = r#"
UPDATE wasmq_jobs
SET state = 'cancelled', finished_at = $2, error = $3
WHERE id = $1
RETURNING *
"#;

pub(super) const CANCEL_RUNNING: &str = r#"
UPDATE wasmq_jobs SET cancel_requested = 1 WHERE id = $1 RETURNING *
"#;

pub(super) const GET: &str = "SELECT * FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

/// The listing query for the filters that are set. SQLite does not fold `$n IS NULL OR …`
/// away when planning, so a set filter is written as a plain comparison (letting it pick
/// the matching `wasmq_jobs_list*` index) and an unset one as `$n IS NULL`, which keeps
/// every parameter in place. Built from constant fragments only; every value is bound.
/// `columns` is `*` or [`SUMMARY_COLUMNS`], a constant.
pub(super) fn list_sql(filter: &JobFilter, columns: &str) -> String {
    let mut sql = format!("SELECT {columns} FROM wasmq_jobs WHERE tenant = $1");
    for (set, compare, unset) in [
        (filter.state.is_some(), " AND state = $2", " AND $2 IS NULL"),
        (
            filter.module.is_some(),
            " AND module = $3",
            " AND $3 IS NULL",
        ),
        (filter.queue.is_some(), " AND queue = $4", " AND $4 IS NULL"),
        (filter.cursor.is_some(), " AND id < $5", " AND $5 IS NULL"),
        // A schedule's ticks have the keys `wasmq:schedule:<name>:<tick>`: with BINARY
        // collation they are the range [`…<name>:`, `…<name>;`) of the idempotency index.
        (
            filter.schedule.is_some(),
            " AND idempotency_key >= $7 AND idempotency_key < $8",
            " AND $7 IS NULL AND $8 IS NULL",
        ),
        (
            filter.parent.is_some(),
            " AND parent_id = $9",
            " AND $9 IS NULL",
        ),
    ] {
        sql.push_str(if set { compare } else { unset });
    }
    sql.push_str(" ORDER BY id DESC LIMIT $6");
    sql
}

pub(super) const PRUNE: &str = r#"
DELETE FROM wasmq_jobs
WHERE id IN (SELECT id FROM wasmq_jobs
             WHERE state IN ('completed', 'failed', 'cancelled') AND finished_at < $1
             LIMIT $2)
"#;

/// Blobs no module version and no unfinished job refers to (optionally only the digests
/// of the JSON array `$1`).
pub(super) const SWEEP_BLOBS: &str = r#"
DELETE FROM wasmq_module_blobs
WHERE ($1 IS NULL OR digest IN (SELECT value FROM json_each($1)))
  AND NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.digest = wasmq_module_blobs.digest)
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j
                  WHERE j.digest = wasmq_module_blobs.digest
                    AND j.state IN ('waiting', 'scheduled', 'available', 'running', 'retryable'))
"#;

// ---------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------

pub(super) const LATEST_MODULE: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

pub(super) const PUT_BLOB: &str = r#"
INSERT INTO wasmq_module_blobs (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (digest) DO NOTHING
"#;

pub(super) const INSERT_MODULE: &str = r#"
INSERT INTO wasmq_modules (tenant, name, version, digest, size, kind, limits, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING *
"#;

pub(super) const MODULE_VERSIONS: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC
"#;

pub(super) const LIST_MODULES: &str = r#"
SELECT * FROM wasmq_modules m
WHERE tenant = $1
  AND version = (SELECT max(version) FROM wasmq_modules
                 WHERE tenant = m.tenant AND name = m.name)
ORDER BY name
"#;

pub(super) const DELETE_MODULE: &str = r#"
DELETE FROM wasmq_modules WHERE tenant = $1 AND name = $2 RETURNING digest
"#;

pub(super) const MODULE_BYTES: &str = "SELECT bytes FROM wasmq_module_blobs WHERE digest = $1";

pub(super) const COUNT_JOBS: &str =
    "SELECT queue, state, count(*) AS n FROM wasmq_jobs GROUP BY queue, state ORDER BY 1, 2";

/// One tenant's unfinished jobs by queue and state (the listing index's unfinished
/// ranges of the tenant, never its finished jobs).
pub(super) const COUNT_UNFINISHED: &str = "SELECT queue, state, count(*) AS n FROM wasmq_jobs \
     WHERE tenant = $1 AND state IN ('waiting', 'scheduled', 'available', 'retryable', 'running') \
     GROUP BY queue, state ORDER BY 1, 2";

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

pub(super) const INSERT_KEY: &str = "INSERT INTO wasmq_api_keys (id, tenant, name, hash, scopes, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(super) const KEY: &str =
    "SELECT tenant, hash, scopes FROM wasmq_api_keys WHERE id = ?1 AND revoked_at IS NULL";

pub(super) const REVOKE_KEY: &str = "UPDATE wasmq_api_keys SET revoked_at = ?3 \
     WHERE tenant = ?1 AND id = ?2 AND revoked_at IS NULL";
