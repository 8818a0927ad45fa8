-- Schedules (see the PostgreSQL migration 0008 for the design). Times are microseconds
-- since the epoch, as in every other table.
CREATE TABLE wasmq_schedules (
    tenant        TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    cron          TEXT    NOT NULL,
    timezone      TEXT    NOT NULL,
    module        TEXT    NOT NULL,
    input         BLOB    NOT NULL,
    queue         TEXT    NOT NULL,
    priority      INTEGER NOT NULL,
    max_attempts  INTEGER NOT NULL,
    limits        TEXT    NOT NULL DEFAULT '{}',
    catch_up      TEXT    NOT NULL,
    paused        INTEGER NOT NULL,
    next_run_at   INTEGER,
    last_run_at   INTEGER,
    last_job_id   INTEGER,
    last_error    TEXT,
    revision      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
);

CREATE INDEX wasmq_schedules_due ON wasmq_schedules (next_run_at)
    WHERE NOT paused AND next_run_at IS NOT NULL;
