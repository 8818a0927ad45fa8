-- Per-module settings, by name across versions: what the module's jobs may reach.
-- `allowed_hosts` is a JSON array of canonical allow-list entries; `config_values` a JSON
-- object of plain values; `config_secrets` a JSON object of values sealed under the
-- server's secret key (never returned by the API).
CREATE TABLE wasmq_module_settings (
    tenant         TEXT        NOT NULL,
    name           TEXT        NOT NULL,
    allowed_hosts  JSONB       NOT NULL DEFAULT '[]',
    config_values  JSONB       NOT NULL DEFAULT '{}',
    config_secrets JSONB       NOT NULL DEFAULT '{}',
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);
