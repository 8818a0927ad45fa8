-- Dependencies between jobs; see the PostgreSQL migration 0011 for the design. SQLite
-- cannot change a CHECK constraint in place, so wasmq_jobs is rebuilt with the state
-- `waiting` allowed and the new columns (SQLite's documented procedure: a new table, the
-- rows copied with their ids, the old one dropped, the new one renamed, the indexes made
-- again). The id sequence keeps its value: ids reserved ahead are never handed out again.

CREATE TEMP TABLE wasmq_saved_sequence AS
    SELECT seq FROM sqlite_sequence WHERE name = 'wasmq_jobs';

CREATE TABLE wasmq_jobs_new (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT    NOT NULL DEFAULT 'default',
    module           TEXT    NOT NULL,
    digest           TEXT    NOT NULL,
    queue            TEXT    NOT NULL DEFAULT 'default',
    priority         INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -32768 AND 32767),
    input            BLOB    NOT NULL DEFAULT x'',
    state            TEXT    NOT NULL CHECK (state IN ('waiting', 'scheduled', 'available',
                                 'running', 'retryable', 'completed', 'failed', 'cancelled')),
    run_at           INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    limits           TEXT    NOT NULL DEFAULT '{}',
    idempotency_key  TEXT,
    progress         TEXT,
    result           BLOB,
    error            TEXT,
    usage            TEXT,
    log              TEXT    NOT NULL DEFAULT '',
    log_dropped      INTEGER NOT NULL DEFAULT 0,
    history          TEXT    NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    worker_id        TEXT,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    coalesce_key     TEXT,
    coalesce_until   INTEGER,
    depends_on       TEXT,
    deps_pending     INTEGER NOT NULL DEFAULT 0 CHECK (deps_pending >= 0),
    dependents       INTEGER NOT NULL DEFAULT 0 CHECK (dependents >= 0)
) STRICT;

INSERT INTO wasmq_jobs_new (id, tenant, module, digest, queue, priority, input, state, run_at,
                            attempt, max_attempts, limits, idempotency_key, progress, result,
                            error, usage, log, log_dropped, history, created_at, started_at,
                            finished_at, worker_id, lease_expires_at, cancel_requested,
                            coalesce_key, coalesce_until)
SELECT id, tenant, module, digest, queue, priority, input, state, run_at, attempt,
       max_attempts, limits, idempotency_key, progress, result, error, usage, log,
       log_dropped, history, created_at, started_at, finished_at, worker_id,
       lease_expires_at, cancel_requested, coalesce_key, coalesce_until
FROM wasmq_jobs;

DROP TABLE wasmq_jobs;
ALTER TABLE wasmq_jobs_new RENAME TO wasmq_jobs;

INSERT INTO sqlite_sequence (name, seq)
SELECT 'wasmq_jobs', 0 WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'wasmq_jobs');
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM temp.wasmq_saved_sequence), 0))
WHERE name = 'wasmq_jobs';
DROP TABLE temp.wasmq_saved_sequence;

-- The indexes of migrations 0001, 0003 and 0007, as they were.
CREATE INDEX wasmq_jobs_claim ON wasmq_jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
CREATE INDEX wasmq_jobs_lease ON wasmq_jobs (lease_expires_at) WHERE state = 'running';
CREATE INDEX wasmq_jobs_waiting ON wasmq_jobs (run_at) WHERE state IN ('scheduled', 'retryable');
CREATE INDEX wasmq_jobs_finished ON wasmq_jobs (finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');
CREATE UNIQUE INDEX wasmq_jobs_idempotency ON wasmq_jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX wasmq_jobs_list_state ON wasmq_jobs (tenant, state, id DESC);
CREATE INDEX wasmq_jobs_list ON wasmq_jobs (tenant, id DESC);
CREATE UNIQUE INDEX wasmq_jobs_coalesce ON wasmq_jobs (tenant, coalesce_key)
    WHERE coalesce_key IS NOT NULL AND started_at IS NULL
      AND state IN ('scheduled', 'available');
-- Unfinished jobs by digest (the blob sweeper), now with waiting ones.
CREATE INDEX wasmq_jobs_digest_unfinished ON wasmq_jobs (digest)
    WHERE state IN ('waiting', 'scheduled', 'available', 'running', 'retryable');

-- Pending edges only: an edge goes when its dependency finishes for good.
CREATE TABLE wasmq_job_deps (
    depends_on INTEGER NOT NULL,
    job_id     INTEGER NOT NULL,
    PRIMARY KEY (depends_on, job_id)
) STRICT, WITHOUT ROWID;
