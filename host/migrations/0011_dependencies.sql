-- Dependencies between jobs: a job enqueued with `depends_on` is `waiting` until every
-- job it depends on has completed (host/src/queue/deps.rs).
--
-- `deps_pending` counts a waiting job's unfinished dependencies, one row of
-- wasmq_job_deps per pending edge. The finish for good of a dependency deletes its edges
-- and takes one from each dependent's count under the dependent's row lock, so exactly
-- one finish sees a count reach 0, on any number of nodes. `dependents` counts the jobs
-- enqueued depending on a job; the enqueue of a dependent raises it under the row lock a
-- finish of that job must take, which is how a finish learns that it raced one.
-- `depends_on` keeps the ids a job was enqueued with, for its readers.
--
-- The claim index stays on available, scheduled and retryable jobs: a waiting job is in
-- no claim's way and costs the claim nothing.

ALTER TABLE wasmq_jobs DROP CONSTRAINT wasmq_jobs_state_check;
ALTER TABLE wasmq_jobs ADD CONSTRAINT wasmq_jobs_state_check
    CHECK (state IN ('waiting', 'scheduled', 'available', 'running', 'retryable',
                     'completed', 'failed', 'cancelled')) NOT VALID;
ALTER TABLE wasmq_jobs VALIDATE CONSTRAINT wasmq_jobs_state_check;

ALTER TABLE wasmq_jobs
    ADD COLUMN depends_on   jsonb,
    ADD COLUMN deps_pending integer NOT NULL DEFAULT 0 CHECK (deps_pending >= 0),
    ADD COLUMN dependents   integer NOT NULL DEFAULT 0 CHECK (dependents >= 0);

-- Pending edges only: an edge goes when its dependency finishes for good, so the table
-- holds what is still to resolve and pruning never needs to look at it.
CREATE TABLE wasmq_job_deps (
    depends_on bigint NOT NULL,
    job_id     bigint NOT NULL,
    PRIMARY KEY (depends_on, job_id)
);

-- Waiting jobs keep their module's bytes (SWEEP_BLOBS); only they have entries here.
CREATE INDEX wasmq_jobs_waiting_digest ON wasmq_jobs (digest) WHERE state = 'waiting';

-- Resolves the dependents of jobs that just finished for good (`parents`, each with its
-- final state in `outcomes`), in the caller's transaction. A completed job takes one
-- from each waiting dependent's count, and one reaching 0 becomes due (`available`, or
-- `scheduled` before its run_at); a failed or cancelled one cancels its waiting
-- dependents with `dependency_failed`, and theirs, down the chain. Tells the other nodes
-- (`node` is the caller's id, so its own listener drops them) and returns the jobs it
-- changed.
--
-- A function because each statement in it takes a fresh snapshot: a dependent whose
-- enqueue committed while the caller's statement waited for the parent's row lock is
-- invisible to that statement, not to this function; and whether a released job is due is
-- read on the clock, not at the caller's start, which may be before that enqueue's
-- `now()`. Dependents are locked in id order, so concurrent finishes releasing several of
-- them never deadlock.
CREATE FUNCTION wasmq_release_dependents(parents bigint[], outcomes text[], node text)
RETURNS TABLE (job bigint, job_state text, job_queue text)
LANGUAGE plpgsql VOLATILE STRICT AS $$
DECLARE
    ids bigint[] := '{}';
    states text[] := '{}';
    queues text[] := '{}';
    failed bigint[];
    failed_states text[];
    cancelled bigint[];
    cancelled_queues text[];
BEGIN
    WITH edges AS (
        DELETE FROM wasmq_job_deps d
        USING UNNEST(parents, outcomes) AS p(id, outcome)
        WHERE d.depends_on = p.id AND p.outcome = 'completed'
        RETURNING d.job_id
    ),
    counts AS (SELECT e.job_id, count(*)::int AS n FROM edges e GROUP BY e.job_id),
    locked AS (
        SELECT w.id FROM wasmq_jobs w
        WHERE w.id IN (SELECT c.job_id FROM counts c) AND w.state = 'waiting'
        ORDER BY w.id
        FOR NO KEY UPDATE
    ),
    upd AS (
        UPDATE wasmq_jobs j
        SET deps_pending = j.deps_pending - c.n,
            state = CASE WHEN j.deps_pending > c.n THEN 'waiting'
                         WHEN j.run_at > clock_timestamp() THEN 'scheduled'
                         ELSE 'available' END
        FROM counts c, locked l
        WHERE j.id = c.job_id AND l.id = j.id AND j.state = 'waiting'
        RETURNING j.id, j.state, j.queue
    )
    SELECT COALESCE(array_agg(u.id), '{}'), COALESCE(array_agg(u.state), '{}'),
           COALESCE(array_agg(u.queue), '{}')
    INTO ids, states, queues
    FROM upd u WHERE u.state <> 'waiting';

    SELECT COALESCE(array_agg(p.id), '{}'), COALESCE(array_agg(p.outcome), '{}')
    INTO failed, failed_states
    FROM UNNEST(parents, outcomes) AS p(id, outcome) WHERE p.outcome <> 'completed';
    WHILE cardinality(failed) > 0 LOOP
        WITH edges AS (
            DELETE FROM wasmq_job_deps d WHERE d.depends_on = ANY(failed)
            RETURNING d.job_id, d.depends_on
        ),
        firsts AS (
            SELECT e.job_id, min(e.depends_on) AS parent FROM edges e GROUP BY e.job_id
        ),
        locked AS (
            SELECT w.id FROM wasmq_jobs w
            WHERE w.id IN (SELECT f.job_id FROM firsts f) AND w.state = 'waiting'
            ORDER BY w.id
            FOR NO KEY UPDATE
        ),
        upd AS (
            UPDATE wasmq_jobs j
            SET state = 'cancelled',
                finished_at = now(),
                error = jsonb_build_object(
                    'kind', 'dependency_failed',
                    'message', format('job %s, which it depends on, %s', f.parent,
                                      CASE WHEN fs.outcome = 'failed' THEN 'failed'
                                           ELSE 'was cancelled' END))
            FROM firsts f
            JOIN UNNEST(failed, failed_states) AS fs(id, outcome) ON fs.id = f.parent,
            locked l
            WHERE j.id = f.job_id AND l.id = j.id AND j.state = 'waiting'
            RETURNING j.id, j.queue
        )
        SELECT COALESCE(array_agg(u.id), '{}'), COALESCE(array_agg(u.queue), '{}')
        INTO cancelled, cancelled_queues
        FROM upd u;
        ids := ids || cancelled;
        states := states || array_fill('cancelled'::text, ARRAY[cardinality(cancelled)]);
        queues := queues || cancelled_queues;
        failed := cancelled;
        failed_states := array_fill('cancelled'::text, ARRAY[cardinality(cancelled)]);
    END LOOP;

    PERFORM pg_notify('wasmq_jobs', node || ' ' || q.queue)
    FROM (SELECT DISTINCT r.queue FROM UNNEST(queues, states) AS r(queue, state)
          WHERE r.state = 'available') q;
    PERFORM pg_notify('wasmq_finished', node || ' ' || string_agg(s.id::text, ','))
    FROM (SELECT r.id, (row_number() OVER ()) / 300 AS chunk
          FROM UNNEST(ids, states) AS r(id, state) WHERE r.state = 'cancelled') s
    GROUP BY s.chunk;
    RETURN QUERY SELECT * FROM UNNEST(ids, states, queues);
END
$$;
