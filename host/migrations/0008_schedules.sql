-- Schedules: a job template, a cron expression in a zone, and the next tick. The
-- scheduler fires a due row by enqueueing its job under a key unique to the tick, then
-- advancing `next_run_at` only if the row is still at the tick and revision it read, so
-- any number of nodes make one job per tick.
CREATE TABLE wasmq_schedules (
    tenant        text        NOT NULL,
    name          text        NOT NULL,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    module        text        NOT NULL,
    input         bytea       NOT NULL,
    queue         text        NOT NULL,
    priority      smallint    NOT NULL,
    max_attempts  integer     NOT NULL,
    limits        jsonb       NOT NULL DEFAULT '{}',
    catch_up      text        NOT NULL,
    paused        boolean     NOT NULL,
    next_run_at   timestamptz,
    last_run_at   timestamptz,
    last_job_id   bigint,
    last_error    text,
    revision      bigint      NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (tenant, name)
);

-- The scheduler's one question: the earliest tick of any running schedule.
CREATE INDEX wasmq_schedules_due ON wasmq_schedules (next_run_at)
    WHERE NOT paused AND next_run_at IS NOT NULL;
