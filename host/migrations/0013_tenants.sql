-- Tenant quotas set by an operator. A row exists once a quota was set on the tenant; a
-- NULL quota falls back to the server's default (and, unset there too, does not limit).
-- Only the API enforces them (api/tenants.rs); `max_running` is read by the claim.
CREATE TABLE wasmq_tenants (
    name                text             PRIMARY KEY,
    max_unfinished_jobs bigint           CHECK (max_unfinished_jobs >= 0),
    max_module_bytes    bigint           CHECK (max_module_bytes >= 0),
    -- Jobs per second, a token bucket of `enqueue_burst` per API node.
    enqueue_rate        double precision CHECK (enqueue_rate > 0),
    enqueue_burst       bigint           CHECK (enqueue_burst >= 1),
    max_running         bigint           CHECK (max_running >= 0),
    max_schedules       bigint           CHECK (max_schedules >= 0),
    updated_at          timestamptz      NOT NULL DEFAULT now()
);
