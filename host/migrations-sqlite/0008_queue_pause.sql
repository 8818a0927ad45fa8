-- Paused queues, per tenant (see the PostgreSQL migration 0010). Times are microseconds
-- since the epoch, as in every other table.
CREATE TABLE wasmq_queue_pauses (
    queue      TEXT    NOT NULL,
    tenant     TEXT    NOT NULL,
    paused_at  INTEGER NOT NULL,
    PRIMARY KEY (queue, tenant)
);
