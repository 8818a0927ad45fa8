-- Child jobs: a job enqueued by a running job's guest is stored with its parent's
-- completion, naming the parent and its depth (the API's jobs are depth 0).
ALTER TABLE wasmq_jobs
    ADD COLUMN parent_id bigint,
    ADD COLUMN depth smallint NOT NULL DEFAULT 0;

-- `GET /v1/jobs?parent=ID`: a parent's children, newest first.
CREATE INDEX wasmq_jobs_parent ON wasmq_jobs (tenant, parent_id, id DESC)
    WHERE parent_id IS NOT NULL;
