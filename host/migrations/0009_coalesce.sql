-- Coalescing (debounce): a job enqueued with a coalesce key gathers later enqueues of
-- the key until it starts. `coalesce_until` caps its run time (first enqueue + max).
ALTER TABLE wasmq_jobs
    ADD COLUMN coalesce_key   text,
    ADD COLUMN coalesce_until timestamptz;

-- At most one waiting, never started job per tenant and key: the arbiter of the
-- enqueue's `INSERT … ON CONFLICT DO UPDATE`, so concurrent enqueues on any number of
-- nodes make one job. A claim sets `started_at` and takes the job out; a retry of a
-- finished job clears its key.
CREATE UNIQUE INDEX wasmq_jobs_coalesce ON wasmq_jobs (tenant, coalesce_key)
    WHERE coalesce_key IS NOT NULL AND started_at IS NULL
      AND state IN ('scheduled', 'available');
