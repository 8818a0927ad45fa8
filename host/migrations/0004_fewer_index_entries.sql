-- Fewer index entries per job, for throughput.
--
-- Every change of `state` is a non-HOT update, which adds an entry to each index whose
-- predicate the new row version satisfies. A job is inserted (waiting), claimed (running)
-- and finished (completed) at least, so each index that covers all three states costs
-- three entries per job. Two such indexes are narrowed here:
--
-- - The by-state listing no longer indexes running and completed jobs. Listing running
--   jobs reads the rescuer's lease index (running jobs are few: at most the workers'
--   concurrency); listing completed jobs reads the newest-first index (completed jobs
--   are most jobs, so few rows are skipped). The listing names the state as a literal,
--   so the planner can match these partial indexes.
-- - The digest index goes. Only the blob sweeper asked it whether an unfinished job
--   still pins a digest, and only for a blob no module version refers to any more (after
--   a module is deleted); it now reads the claim and lease indexes instead.
--
-- The new index is built first, while the old ones still serve: building it blocks
-- writes to wasmq_jobs (not reads) for its duration; the drops, which block reads too,
-- come last and hold their lock only until the commit right after.
CREATE INDEX wasmq_jobs_list_state_unfinished ON wasmq_jobs (tenant, state, id DESC)
    WHERE state IN ('scheduled', 'available', 'retryable', 'failed', 'cancelled');
DROP INDEX wasmq_jobs_digest_unfinished;
DROP INDEX wasmq_jobs_list_state;
ALTER INDEX wasmq_jobs_list_state_unfinished RENAME TO wasmq_jobs_list_state;
