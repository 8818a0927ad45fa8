-- Coalescing (debounce); see the PostgreSQL migration 0009. `coalesce_until` is in
-- microseconds since the epoch, as every other time.
ALTER TABLE wasmq_jobs ADD COLUMN coalesce_key TEXT;
ALTER TABLE wasmq_jobs ADD COLUMN coalesce_until INTEGER;

-- At most one waiting, never started job per tenant and key (the one writer looks it
-- up before inserting; the index makes a mistake an error, not a second job).
CREATE UNIQUE INDEX wasmq_jobs_coalesce ON wasmq_jobs (tenant, coalesce_key)
    WHERE coalesce_key IS NOT NULL AND started_at IS NULL
      AND state IN ('scheduled', 'available');
