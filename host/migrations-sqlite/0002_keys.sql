-- API keys (see the PostgreSQL migration 0002_keys.sql): `wq_<id>_<secret>`; `hash` is
-- the SHA-256 of the secret; `scopes` a JSON array of scope names; times in unix µs.
CREATE TABLE wasmq_api_keys (
    id         TEXT    PRIMARY KEY,
    tenant     TEXT    NOT NULL,
    name       TEXT,
    hash       TEXT    NOT NULL,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
CREATE INDEX wasmq_api_keys_tenant ON wasmq_api_keys (tenant);
