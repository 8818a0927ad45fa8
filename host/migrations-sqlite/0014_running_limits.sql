-- Per-(tenant, queue) concurrency limits (see the PostgreSQL migration 0017); the claim
-- counts running jobs itself, under the single writer. Times are microseconds since the
-- epoch, as in every other table.
CREATE TABLE wasmq_queue_limits (
    queue       TEXT    NOT NULL,
    tenant      TEXT    NOT NULL,
    max_running INTEGER NOT NULL CHECK (max_running >= 0),
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, tenant)
);
