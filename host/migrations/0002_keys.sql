-- API keys. A key is `wq_<id>_<secret>`: the id finds the row, the secret is checked
-- against `hash`, the SHA-256 of the secret (lower-case hex). A plain SHA-256 is fine here
-- because secrets are 256 random bits, not passwords: there is nothing to brute-force.
-- Keys are never stored in the clear and are compared in constant time.
CREATE TABLE wasmq_api_keys (
    id         text        PRIMARY KEY,
    tenant     text        NOT NULL,
    name       text,
    hash       text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
CREATE INDEX wasmq_api_keys_tenant ON wasmq_api_keys (tenant);
