-- Tenant quotas (see the PostgreSQL migration 0013). Times are microseconds since the
-- epoch, as in every other table.
CREATE TABLE wasmq_tenants (
    name                TEXT    PRIMARY KEY,
    max_unfinished_jobs INTEGER CHECK (max_unfinished_jobs >= 0),
    max_module_bytes    INTEGER CHECK (max_module_bytes >= 0),
    enqueue_rate        REAL    CHECK (enqueue_rate > 0),
    enqueue_burst       INTEGER CHECK (enqueue_burst >= 1),
    max_running         INTEGER CHECK (max_running >= 0),
    max_schedules       INTEGER CHECK (max_schedules >= 0),
    updated_at          INTEGER NOT NULL
);
