-- Listing a schedule's jobs (`GET /v1/jobs?schedule=NAME`): a job of a schedule tick has
-- the idempotency key `wasmq:schedule:<name>:<tick>`, so an index over the name part of
-- those keys serves the listing newest first. Only such jobs are indexed.
CREATE INDEX wasmq_jobs_schedule
    ON wasmq_jobs (tenant, (split_part(idempotency_key, ':', 3)), id DESC)
    WHERE idempotency_key LIKE 'wasmq:schedule:%';
