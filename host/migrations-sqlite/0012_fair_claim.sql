-- Fair claims between tenants: the claim index leads with (queue, tenant), so a claim
-- can walk the tenants waiting in a queue (one probe each) and take each one's jobs in
-- its own priority order.
DROP INDEX wasmq_jobs_claim;
CREATE INDEX wasmq_jobs_claim ON wasmq_jobs (queue, tenant, priority DESC, run_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');
