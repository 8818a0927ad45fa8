-- Paused queues. Queue names are one namespace across tenants, so a pause belongs to
-- the tenant that asked: the claim skips that tenant's jobs in that queue only. Keyed by
-- queue first: a claim's one look ("does anyone pause this queue?") is a prefix probe.
CREATE TABLE wasmq_queue_pauses (
    queue      text        NOT NULL,
    tenant     text        NOT NULL,
    paused_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, tenant)
);
