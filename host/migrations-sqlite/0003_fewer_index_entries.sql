-- Fewer index entries per job, for throughput (as PostgreSQL's 0003 and 0004).
--
-- Every change of `state` rewrites the row's entry in every index, and a job changes
-- state at least three times (enqueued, claimed, finished). The by-module and by-queue
-- listing indexes go (listing reads the by-tenant or by-state index and checks the
-- module or queue on the rows it reads), and so does the digest index: only the blob
-- sweeper asked it whether an unfinished job still pins a digest, and only for a blob no
-- module version refers to any more (after a module is deleted).
DROP INDEX wasmq_jobs_list_module;
DROP INDEX wasmq_jobs_list_queue;
DROP INDEX wasmq_jobs_digest;
