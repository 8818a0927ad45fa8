-- wasmq job store, initial schema.
--
-- Every table is prefixed `wasmq_` so the store can share a database with an application.
-- The queries live next to their use in host/src/queue/postgres.rs; the indexes below are
-- designed for them (see the comment on each).

-- Module bytes, stored once per content digest (sha256, lower-case hex).
CREATE TABLE wasmq_module_blobs (
    digest     text        PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
    bytes      bytea       NOT NULL,
    size       bigint      NOT NULL CHECK (size >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Numbered versions of a module, per tenant and name. Version N+1 is created whenever the
-- bytes (or the kind or default limits) differ from version N.
CREATE TABLE wasmq_modules (
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    version    integer     NOT NULL CHECK (version >= 1),
    digest     text        NOT NULL REFERENCES wasmq_module_blobs (digest),
    size       bigint      NOT NULL CHECK (size >= 0),
    kind       text        NOT NULL CHECK (kind IN ('component', 'command')),
    limits     jsonb       NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name, version)
);
CREATE INDEX wasmq_modules_digest ON wasmq_modules (digest);

CREATE TABLE wasmq_jobs (
    id               bigserial   PRIMARY KEY,
    tenant           text        NOT NULL DEFAULT 'default',
    module           text        NOT NULL,
    -- Pinned at enqueue; not a foreign key, so deleting a module never touches its jobs.
    digest           text        NOT NULL,
    queue            text        NOT NULL DEFAULT 'default',
    priority         smallint    NOT NULL DEFAULT 0,
    input            bytea       NOT NULL DEFAULT '\x',
    state            text        NOT NULL CHECK (state IN ('scheduled', 'available', 'running',
                                     'retryable', 'completed', 'failed', 'cancelled')),
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempt          integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts     integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    limits           jsonb       NOT NULL DEFAULT '{}',
    idempotency_key  text,
    progress         jsonb,
    result           bytea,
    error            jsonb,
    usage            jsonb,
    log              text        NOT NULL DEFAULT '',
    log_dropped      bigint      NOT NULL DEFAULT 0,
    history          jsonb       NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_id        text,
    lease_expires_at timestamptz,
    cancel_requested boolean     NOT NULL DEFAULT false
);

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
CREATE INDEX wasmq_jobs_list ON wasmq_jobs (tenant, id DESC);
CREATE INDEX wasmq_jobs_list_state ON wasmq_jobs (tenant, state, id DESC);
CREATE INDEX wasmq_jobs_list_module ON wasmq_jobs (tenant, module, id DESC);
CREATE INDEX wasmq_jobs_list_queue ON wasmq_jobs (tenant, queue, id DESC);
-- Whether a blob is still needed by an unfinished job (module deletion, pruning).
CREATE INDEX wasmq_jobs_digest ON wasmq_jobs (digest);
