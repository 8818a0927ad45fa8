//! The SQL text of the PostgreSQL driver. Queries are checked at run time (`sqlx::query`),
//! not at compile time (CI has no database then); the conformance suite runs every one of
//! them against a real server. Every notification carries the sending node's id
//! (`"<id> <payload>"`), so its own listener drops it: the core tells its own process.

use super::JobFilter;
use crate::queue::JobState;

/// One statement for the whole batch. Ids are drawn from the sequence up front so each input
/// row knows its job; rows whose idempotency key exists (before the statement, or earlier
/// in the batch) return that job. A row missing from the answer either names a module
/// with no version or raced a concurrent insert of its key (handled by the caller).
pub(super) const ENQUEUE: &str = r#"
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
pub(super) const ENQUEUE_PINNED: &str = r#"
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

/// A lone due job handed to an idle worker of this process (`Driver::insert_running`):
/// written with its id (drawn ahead) as its first attempt, leased to that worker (`$10`,
/// for `$11` seconds), as the claim would have left it. No notification: no other worker
/// should look for it. `$1..$9` as `queue::rows::bind_job` binds them.
pub(super) const ENQUEUE_RUNNING: &str = r#"
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
/// commit instead of three. `$1..$9` as `queue::rows::bind_job` binds them; `$18` is the node's
/// id, for the notification.
///
/// Only a released attempt (the job stored `available`) notifies: its queue's workers on
/// every node are woken. A finished job sends no `wasmq_finished`: that is for
/// long-polls, and none can be waiting on a job that did not exist until this commit (a
/// long-poll reads the job first and answers 404 for an unknown id), and a `pg_notify` in
/// the insert's statement adds to its latency (docs/perf-log.md).
pub(super) const ENQUEUE_FINISHED: &str = r#"
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

pub(super) const DRAW_IDS: &str =
    "SELECT nextval('wasmq_jobs_id_seq') AS id FROM generate_series(1, $1)";

/// The latest version's digest of each named module (those with a version).
pub(super) const LATEST_DIGESTS: &str = r#"
SELECT DISTINCT ON (m.tenant, m.name) m.tenant, m.name, m.digest
FROM UNNEST($1::text[], $2::text[]) AS t(tenant, name)
JOIN wasmq_modules m ON m.tenant = t.tenant AND m.name = t.name
ORDER BY m.tenant, m.name, m.version DESC
"#;

/// Which of the named modules have no version.
pub(super) const MISSING_MODULES: &str = r#"
SELECT DISTINCT t.tenant, t.name
FROM UNNEST($1::text[], $2::text[]) AS t(tenant, name)
WHERE NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.tenant = t.tenant AND m.name = t.name)
"#;

/// The claim: due waiting jobs of one queue, fairly between its tenants, locked with
/// SKIP LOCKED so concurrent claimers never block on or receive the same row, then
/// marked running. `$tenants` names the tenants to serve; each of them that has not
/// paused the queue offers its share of `$3` in its own priority order (the partial
/// index `wasmq_jobs_claim`, led by queue and tenant), and the claim takes the tenants'
/// first jobs, then their second ones, and so on (`policy::claim_order` is the order).
/// The ids go to the update as one array (`= ANY(ARRAY(…))`): its generic plan is a
/// primary-key probe per id, where a join would be planned for a tenth of the table.
/// A tenant's share is cut to the room its running-job caps leave (`wasmq_claim_room`,
/// migration 0017: `$5` the server's default `max_running`), computed before its rows
/// are locked: O(1) per uncapped tenant, a lock and a count bounded by the cap otherwise.
macro_rules! claim {
    ($tenants:literal) => {
        concat!(
            "WITH RECURSIVE tenants AS (",
            $tenants,
            r#"),
share AS (
    SELECT ceil($3::float8 / greatest(count(*), 1))::bigint AS n
    FROM tenants WHERE tenant IS NOT NULL
)
UPDATE wasmq_jobs j
SET state = 'running',
    attempt = j.attempt + 1,
    started_at = now(),
    worker_id = $2,
    lease_expires_at = now() + $4::float8 * interval '1 second',
    cancel_requested = false,
    progress = NULL
WHERE j.id = ANY(ARRAY(
    SELECT id FROM (
        SELECT c.id, c.run_at,
               row_number() OVER (PARTITION BY t.tenant
                                  ORDER BY c.priority DESC, c.run_at, c.id) AS rank
        FROM tenants t
        CROSS JOIN LATERAL (
            SELECT id, priority, run_at FROM wasmq_jobs
            WHERE queue = $1 AND tenant = t.tenant
              AND state IN ('available', 'scheduled', 'retryable')
              AND run_at <= now()
              AND NOT EXISTS (SELECT 1 FROM wasmq_queue_pauses p
                              WHERE p.queue = $1 AND p.tenant = t.tenant)
            ORDER BY priority DESC, run_at, id
            LIMIT least((SELECT n FROM share),
                        wasmq_claim_room($1, t.tenant, $5::bigint, (SELECT n FROM share)))
            FOR UPDATE SKIP LOCKED
        ) c
        WHERE t.tenant IS NOT NULL
    ) ranked
    ORDER BY rank, run_at, id
    LIMIT $3
))
RETURNING j.*
"#
        )
    };
}

/// The claim for every tenant: the tenants with waiting jobs in the queue, walked one
/// index probe each (a loose index scan).
pub(super) const CLAIM: &str = claim!(
    r#"
    (SELECT tenant FROM wasmq_jobs
     WHERE queue = $1 AND state IN ('available', 'scheduled', 'retryable')
     ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT w.tenant FROM wasmq_jobs w
            WHERE w.queue = $1 AND w.state IN ('available', 'scheduled', 'retryable')
              AND w.tenant > t.tenant
            ORDER BY w.tenant LIMIT 1)
    FROM tenants t
    WHERE t.tenant IS NOT NULL
"#
);

/// The claim for one tenant (`$6`), for workers that serve only it.
pub(super) const CLAIM_TENANT: &str = claim!("SELECT $6::text AS tenant");

pub(super) const HEARTBEAT: &str = r#"
UPDATE wasmq_jobs
SET lease_expires_at = now() + $3::float8 * interval '1 second'
WHERE id = ANY($2::bigint[]) AND state = 'running' AND worker_id = $1
RETURNING id, cancel_requested
"#;

/// The CTE `dependents` over `$rows` (a CTE of updated jobs with `id`, `state` and
/// `dependents`): the dependents of those that finished for good, released or cancelled
/// (`wasmq_release_dependents`, migration 0011) by node `$node`. The `dependents` count
/// read after the row lock tells a job that has some, even one whose enqueue committed
/// after this statement began; for the others the function is not called.
macro_rules! dependents {
    ($rows:literal, $node:literal) => {
        concat!(
            "dependents AS (
    SELECT r.* FROM (
        SELECT array_agg(id ORDER BY id) AS ids, array_agg(state ORDER BY id) AS states
        FROM ",
            $rows,
            " WHERE dependents > 0 AND state IN ('completed', 'failed', 'cancelled')
    ) a, wasmq_release_dependents(a.ids, a.states, ",
            $node,
            ") r
)"
        )
    };
}

/// Applies reports only to jobs still running at the reported attempt, appends failed
/// attempts to the history, and wakes long-polls of jobs that finished for good (ids in
/// chunks that fit a notification payload). Rows with `dependent` are the dependents
/// those jobs released or cancelled.
pub(super) const FINISH: &str = concat!(
    r#"
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
    RETURNING j.id, j.state, j.queue, j.dependents
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
),
"#,
    dependents!("upd", "$11"),
    r#"
SELECT id, state, queue, false AS dependent FROM upd
WHERE (SELECT count(*) FROM notified) + (SELECT count(*) FROM released) >= 0
UNION ALL
SELECT job, job_state, job_queue, true FROM dependents
"#
);

pub(super) const SET_PROGRESS: &str = r#"
UPDATE wasmq_jobs SET progress = $3
WHERE id = $1 AND attempt = $2 AND state = 'running'
"#;

pub(super) const TRY_RESCUE_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";

/// Expired leases: cancelled if a cancel was requested, retryable at once while attempts
/// remain, failed otherwise; always with a history entry. The messages (`$1` lost, `$2`
/// cancelled) name no worker; the answer does, for the log. `$4`: the node's id.
pub(super) const RESCUE: &str = r#"
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
    SELECT pg_notify('wasmq_jobs', $4 || ' ' || q.queue)
    FROM (SELECT DISTINCT queue FROM upd WHERE state = 'retryable') q
),
finished AS (
    SELECT pg_notify('wasmq_finished', $4 || ' ' || string_agg(id::text, ','))
    FROM (SELECT id, (row_number() OVER ()) / 300 AS chunk
          FROM upd WHERE state <> 'retryable') s
    GROUP BY chunk
)
SELECT id, state, queue, worker_id FROM upd
WHERE (SELECT count(*) FROM available) + (SELECT count(*) FROM finished) >= 0
"#;

/// The dependents of jobs a rescue failed or cancelled (`$1` ids, `$2` states, `$3` the
/// node's id), in the rescue's transaction.
pub(super) const RESCUE_DEPENDENTS: &str = "SELECT job AS id, job_state AS state, job_queue AS queue \
     FROM wasmq_release_dependents($1, $2, $3)";

/// `$2`: the node's id. One row (its queue) per promoted job. The ids are an array for
/// the claim's reason (above).
pub(super) const PROMOTE: &str = r#"
WITH p AS (
    UPDATE wasmq_jobs SET state = 'available'
    WHERE id = ANY(ARRAY(SELECT id FROM wasmq_jobs
                         WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
                         ORDER BY run_at
                         LIMIT $1
                         FOR UPDATE SKIP LOCKED))
    RETURNING queue
),
notified AS (
    SELECT pg_notify('wasmq_jobs', $2 || ' ' || q.queue) FROM (SELECT DISTINCT queue FROM p) q
)
SELECT queue FROM p WHERE (SELECT count(*) FROM notified) >= 0
"#;

/// Not started → cancelled; running → cancel requested (its worker is told); finished →
/// rewritten unchanged (so the answer is the current row, even under a concurrent finish).
/// `cancelled_now` says whether this statement cancelled it; `$3`: the node's id.
/// `cascaded`: the dependents cancelled with it, down the chain.
pub(super) const CANCEL: &str = concat!(
    r#"
WITH upd AS (
    UPDATE wasmq_jobs j
    SET state = CASE WHEN j.state IN ('waiting', 'scheduled', 'available', 'retryable')
                     THEN 'cancelled' ELSE j.state END,
        cancel_requested = j.cancel_requested OR j.state = 'running',
        finished_at = CASE WHEN j.state IN ('waiting', 'scheduled', 'available', 'retryable')
                           THEN now() ELSE j.finished_at END,
        error = CASE WHEN j.state IN ('waiting', 'scheduled', 'available', 'retryable')
                     THEN jsonb_build_object('kind', 'cancelled',
                                             'message', 'cancelled before it ran')
                     ELSE j.error END
    WHERE j.tenant = $1 AND j.id = $2
    RETURNING j.*, (j.state = 'cancelled' AND j.finished_at = now()) AS cancelled_now
),
notified AS (
    SELECT pg_notify(CASE WHEN state = 'running' THEN 'wasmq_cancel'
                          ELSE 'wasmq_finished' END, $3 || ' ' || id::text)
    FROM upd
    WHERE state = 'running' OR cancelled_now
),
now_cancelled AS (SELECT id, state, dependents FROM upd WHERE cancelled_now),
"#,
    dependents!("now_cancelled", "$3"),
    r#"
SELECT upd.*, ARRAY(SELECT job FROM dependents) AS cascaded
FROM upd WHERE (SELECT count(*) FROM notified) >= 0
"#
);

/// On the idempotency index.
pub(super) const JOB_ID_BY_KEY: &str =
    "SELECT id FROM wasmq_jobs WHERE tenant = $1 AND idempotency_key = $2";

pub(super) const GET: &str = "SELECT * FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

pub(super) const JOB_STATE: &str = "SELECT state FROM wasmq_jobs WHERE tenant = $1 AND id = $2";

/// The listing: only the filters given are in the text (one prepared statement per
/// combination), so the generic plan of each picks its index. The state is a literal (one
/// of eight fixed words), so each state's range of `wasmq_jobs_list` (tenant, state, id)
/// is read backwards, newest first (migration 0005). Without a state filter the eight
/// states' ranges are each read up to `limit` rows and merged by id (a `Merge Append`):
/// an index in (tenant, id) order would cost every job an index entry at every change of
/// state, which is what the enqueue and the worker spend most of their time on. The
/// price: with a module or queue filter and no state, a state with no matching job is
/// read to the end of its range before the first row comes back.
/// `columns` is `*` or [`SUMMARY_COLUMNS`], a constant.
pub(super) fn list_query(
    tenant: &str,
    filter: &JobFilter,
    limit: i64,
    columns: &'static str,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    if let Some(schedule) = &filter.schedule {
        return narrow_list_query(tenant, Narrow::Schedule(schedule), filter, limit, columns);
    }
    if filter.parent.is_some() {
        return narrow_list_query(tenant, Narrow::Parent, filter, limit, columns);
    }
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

/// What a narrow listing is led by, each on its own partial index.
enum Narrow<'a> {
    /// A schedule's ticks (migration 0015: the query names its expression and predicate
    /// as written there).
    Schedule(&'a str),
    /// A job's children (migration 0016): the filter's `parent`.
    Parent,
}

/// The jobs of a schedule or of a parent (or both), newest first, on the index of the
/// first.
fn narrow_list_query(
    tenant: &str,
    narrow: Narrow<'_>,
    filter: &JobFilter,
    limit: i64,
    columns: &'static str,
) -> sqlx::QueryBuilder<sqlx::Postgres> {
    let mut q =
        sqlx::QueryBuilder::new(format!("SELECT {columns} FROM wasmq_jobs WHERE tenant = "));
    q.push_bind(tenant.to_owned());
    if let Narrow::Schedule(schedule) = narrow {
        q.push(
            " AND idempotency_key LIKE 'wasmq:schedule:%' \
             AND split_part(idempotency_key, ':', 3) = ",
        );
        q.push_bind(schedule.to_owned());
    }
    if let Some(parent) = filter.parent {
        q.push(" AND parent_id IS NOT NULL AND parent_id = ");
        q.push_bind(parent);
    }
    if let Some(state) = filter.state {
        q.push(format_args!(" AND state = '{}'", state.as_str()));
    }
    if let Some(module) = &filter.module {
        q.push(" AND module = ").push_bind(module.clone());
    }
    if let Some(queue) = &filter.queue {
        q.push(" AND queue = ").push_bind(queue.clone());
    }
    if let Some(cursor) = filter.cursor {
        q.push(" AND id < ").push_bind(cursor);
    }
    q.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    q
}

pub(super) const PRUNE: &str = r#"
WITH d AS (
    DELETE FROM wasmq_jobs
    WHERE id = ANY(ARRAY(SELECT id FROM wasmq_jobs
                         WHERE state IN ('completed', 'failed', 'cancelled')
                           AND finished_at < now() - $1::float8 * interval '1 second'
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED))
    RETURNING 1
)
SELECT count(*) AS deleted FROM d
"#;

/// Blobs no module version and no unfinished job refers to (optionally only some digests).
/// The job checks only run for blobs no module refers to, and read the waiting jobs
/// through the claim index, the running ones through the lease index and those waiting
/// for dependencies through theirs (their predicates, written out here): jobs have no digest index (migration 0004).
pub(super) const SWEEP_BLOBS: &str = r#"
DELETE FROM wasmq_module_blobs b
WHERE ($1::text[] IS NULL OR b.digest = ANY($1))
  AND NOT EXISTS (SELECT 1 FROM wasmq_modules m WHERE m.digest = b.digest)
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j
                  WHERE j.digest = b.digest AND j.state IN ('available', 'scheduled', 'retryable'))
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j WHERE j.digest = b.digest AND j.state = 'running')
  AND NOT EXISTS (SELECT 1 FROM wasmq_jobs j WHERE j.digest = b.digest AND j.state = 'waiting')
"#;

// ---------------------------------------------------------------------------------------
// Modules
// ---------------------------------------------------------------------------------------

pub(super) const LOCK_MODULE: &str = "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))";

pub(super) const LATEST_MODULE: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC LIMIT 1
"#;

/// Stores the bytes once per digest (the core checked that the digest is theirs).
pub(super) const PUT_BLOB: &str = r#"
INSERT INTO wasmq_module_blobs (digest, bytes, size) VALUES ($1, $2, length($2))
ON CONFLICT (digest) DO NOTHING
"#;

pub(super) const INSERT_MODULE: &str = r#"
INSERT INTO wasmq_modules (tenant, name, version, digest, size, kind, limits)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING *
"#;

pub(super) const MODULE_VERSIONS: &str = r#"
SELECT * FROM wasmq_modules WHERE tenant = $1 AND name = $2 ORDER BY version DESC
"#;

pub(super) const LIST_MODULES: &str = r#"
SELECT DISTINCT ON (name) * FROM wasmq_modules WHERE tenant = $1 ORDER BY name, version DESC
"#;

pub(super) const DELETE_MODULE: &str = r#"
WITH d AS (DELETE FROM wasmq_modules WHERE tenant = $1 AND name = $2 RETURNING digest)
SELECT DISTINCT digest FROM d
"#;

pub(super) const MODULE_BYTES: &str = "SELECT bytes FROM wasmq_module_blobs WHERE digest = $1";

/// How a report's outcome is written ([`FINISH`], [`ENQUEUE_FINISHED`]).
pub(super) const COUNT_JOBS: &str =
    "SELECT queue, state, count(*) AS n FROM wasmq_jobs GROUP BY queue, state ORDER BY 1, 2";

/// One tenant's unfinished jobs by queue and state: the listing index's unfinished
/// ranges of the tenant, never its finished jobs.
pub(super) const COUNT_UNFINISHED: &str = "SELECT queue, state, count(*) AS n FROM wasmq_jobs \
     WHERE tenant = $1 AND state IN ('waiting', 'scheduled', 'available', 'retryable', 'running') \
     GROUP BY queue, state ORDER BY 1, 2";

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

pub(super) const INSERT_KEY: &str =
    "INSERT INTO wasmq_api_keys (id, tenant, name, hash, scopes) VALUES ($1, $2, $3, $4, $5)";

pub(super) const KEY: &str =
    "SELECT tenant, hash, scopes FROM wasmq_api_keys WHERE id = $1 AND revoked_at IS NULL";

pub(super) const REVOKE_KEY: &str = "UPDATE wasmq_api_keys SET revoked_at = now() \
     WHERE tenant = $1 AND id = $2 AND revoked_at IS NULL";

/// The statements that run against the whole jobs table on every node, with their
/// parameter types and sample arguments, for the plan test in
/// `tests/tests/store_postgres.rs`: each must reach jobs through an index.
pub const HOT_STATEMENTS: &[(&str, &str, &str, &str)] = &[
    (
        "claim",
        CLAIM,
        "text, text, bigint, float8, bigint",
        "'q1', 'w', 32, 30.0, NULL",
    ),
    (
        "claim of one tenant",
        CLAIM_TENANT,
        "text, text, bigint, float8, bigint, text",
        "'q1', 'w', 32, 30.0, 4, 'default'",
    ),
    ("promote", PROMOTE, "bigint, text", "1000, 'node'"),
    ("prune", PRUNE, "float8, bigint", "86400.0, 1000"),
    (
        "heartbeat",
        HEARTBEAT,
        "text, bigint[], float8",
        "'w', '{1,2,3}', 30.0",
    ),
    (
        "finish",
        FINISH,
        "bigint[], int[], text[], bytea[], jsonb[], timestamptz[], jsonb[], text[], \
         bigint[], jsonb[], text, int",
        "'{1}', '{1}', '{completed}', '{NULL}', '{NULL}', '{NULL}', '{NULL}', '{\"\"}', \
         '{0}', '{NULL}', 'node', 20",
    ),
];
