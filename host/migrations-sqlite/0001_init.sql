-- wasmq job store on SQLite, initial schema (the embedded, single-node store).
--
-- The same tables as host/migrations (PostgreSQL), in SQLite's types:
-- timestamps are INTEGER unix microseconds (UTC; they order correctly and compare as
-- numbers), JSON is TEXT, bytes are BLOB, booleans are INTEGER 0/1. The queries live next
-- to their use in host/src/queue/sqlite.rs; the indexes below are designed for them.

-- Module bytes, stored once per content digest (sha256, lower-case hex).
CREATE TABLE wasmq_module_blobs (
    digest     TEXT    PRIMARY KEY CHECK (length(digest) = 64 AND digest NOT GLOB '*[^0-9a-f]*'),
    bytes      BLOB    NOT NULL,
    size       INTEGER NOT NULL CHECK (size >= 0),
    created_at INTEGER NOT NULL
) STRICT;

-- Numbered versions of a module, per tenant and name.
CREATE TABLE wasmq_modules (
    tenant     TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    digest     TEXT    NOT NULL REFERENCES wasmq_module_blobs (digest),
    size       INTEGER NOT NULL CHECK (size >= 0),
    kind       TEXT    NOT NULL CHECK (kind IN ('component', 'command')),
    limits     TEXT    NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, name, version)
) STRICT;
CREATE INDEX wasmq_modules_digest ON wasmq_modules (digest);

-- AUTOINCREMENT: ids are never reused, even after the newest jobs are pruned.
CREATE TABLE wasmq_jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant           TEXT    NOT NULL DEFAULT 'default',
    module           TEXT    NOT NULL,
    -- Pinned at enqueue; not a foreign key, so deleting a module never touches its jobs.
    digest           TEXT    NOT NULL,
    queue            TEXT    NOT NULL DEFAULT 'default',
    priority         INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -32768 AND 32767),
    input            BLOB    NOT NULL DEFAULT x'',
    state            TEXT    NOT NULL CHECK (state IN ('scheduled', 'available', 'running',
                                 'retryable', 'completed', 'failed', 'cancelled')),
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
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1))
) STRICT;

-- The claim query: due jobs of one queue, highest priority first, then oldest run_at.
CREATE INDEX wasmq_jobs_claim ON wasmq_jobs (queue, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');

-- The rescuer: running jobs by lease expiry.
CREATE INDEX wasmq_jobs_lease ON wasmq_jobs (lease_expires_at) WHERE state = 'running';

-- The scheduler (promote_scheduled): waiting jobs by run_at.
CREATE INDEX wasmq_jobs_waiting ON wasmq_jobs (run_at) WHERE state IN ('scheduled', 'retryable');

-- The cleaner (prune): finished jobs by finish time.
CREATE INDEX wasmq_jobs_finished ON wasmq_jobs (finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');

-- Idempotency: one job per key per tenant among stored jobs (pruning frees the key).
CREATE UNIQUE INDEX wasmq_jobs_idempotency ON wasmq_jobs (tenant, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Listings, newest first, keyset-paged by id.
CREATE INDEX wasmq_jobs_list_state ON wasmq_jobs (tenant, state, id DESC);
CREATE INDEX wasmq_jobs_list_module ON wasmq_jobs (tenant, module, id DESC);
CREATE INDEX wasmq_jobs_list_queue ON wasmq_jobs (tenant, queue, id DESC);
CREATE INDEX wasmq_jobs_list ON wasmq_jobs (tenant, id DESC);
-- Whether a blob is still needed by an unfinished job (module deletion, pruning).
CREATE INDEX wasmq_jobs_digest ON wasmq_jobs (digest);
