-- Per-module settings (see the PostgreSQL migration 0006_module_settings.sql): JSON as
-- TEXT, time in unix µs.
CREATE TABLE wasmq_module_settings (
    tenant         TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    allowed_hosts  TEXT    NOT NULL DEFAULT '[]',
    config_values  TEXT    NOT NULL DEFAULT '{}',
    config_secrets TEXT    NOT NULL DEFAULT '{}',
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant, name)
) STRICT;
