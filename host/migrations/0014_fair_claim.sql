-- Fair claims between tenants: the claim index leads with (queue, tenant), so a claim
-- can walk the tenants waiting in a queue (one probe each) and take each one's jobs in
-- its own priority order. Built before the old index goes, which serves until then.
CREATE INDEX wasmq_jobs_claim_fair ON wasmq_jobs (queue, tenant, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
DROP INDEX wasmq_jobs_claim;
ALTER INDEX wasmq_jobs_claim_fair RENAME TO wasmq_jobs_claim;
