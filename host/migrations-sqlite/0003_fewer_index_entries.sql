-- Fewer index entries per job, for throughput (as PostgreSQL's 0003 and 0004).
--
-- Every change of `state` rewrites the row's entry in every index, and a job changes
-- state at least three times (enqueued, claimed, finished). The by-module and by-queue
-- listing indexes go (listing reads the by-tenant or by-state index and checks the
-- module or queue on the rows it reads), and the digest index keeps only unfinished
-- jobs: the blob sweeper asks it whether an unfinished job still pins a digest, with the
-- same state list (SQLite uses a partial index only for a query that repeats its terms).
DROP INDEX wasmq_jobs_list_module;
DROP INDEX wasmq_jobs_list_queue;
DROP INDEX wasmq_jobs_digest;
CREATE INDEX wasmq_jobs_digest_unfinished ON wasmq_jobs (digest)
    WHERE state IN ('scheduled', 'available', 'running', 'retryable');
