-- Concurrency limits, enforced by the claim on every node: a tenant's `max_running`
-- (`wasmq_tenants`, else the server's default) and a per-(tenant, queue) limit here.
-- Keyed by queue first, as the pauses: the claim probes (queue, tenant).
CREATE TABLE wasmq_queue_limits (
    queue       text        NOT NULL,
    tenant      text        NOT NULL,
    max_running bigint      NOT NULL CHECK (max_running >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue, tenant)
);

-- How many of `want` jobs of `p_tenant` a claim in `p_queue` may start without taking
-- the tenant past its cap (its row's, else `p_default`) or the queue past its limit.
-- Uncapped: `want`, two primary-key probes. Capped: a transaction-scoped advisory lock
-- per cap serialises the claimers of that tenant (and queue) across nodes, then the
-- running jobs are counted with a fresh snapshot (PL/pgSQL: one per statement), so a
-- claim that waited sees what the one before it committed. Counts read the listing
-- index `(tenant, state, id)`, stopped at the cap. Locks are taken in the claim's tenant
-- order, tenant before queue, so two claimers never wait on each other in a cycle.
CREATE FUNCTION wasmq_claim_room(p_queue text, p_tenant text, p_default bigint, p_want bigint)
RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    cap bigint := COALESCE((SELECT t.max_running FROM wasmq_tenants t WHERE t.name = p_tenant),
                           p_default);
    queue_cap bigint := (SELECT l.max_running FROM wasmq_queue_limits l
                         WHERE l.queue = p_queue AND l.tenant = p_tenant);
    room bigint := p_want;
    running bigint;
BEGIN
    IF cap IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('wasmq_running'), hashtext(p_tenant));
        SELECT count(*) INTO running FROM (
            SELECT 1 FROM wasmq_jobs WHERE tenant = p_tenant AND state = 'running' LIMIT cap
        ) r;
        room := least(room, cap - running);
    END IF;
    IF queue_cap IS NOT NULL AND room > 0 THEN
        PERFORM pg_advisory_xact_lock(hashtext('wasmq_running ' || p_tenant), hashtext(p_queue));
        SELECT count(*) INTO running FROM (
            SELECT 1 FROM wasmq_jobs
            WHERE tenant = p_tenant AND state = 'running' AND queue = p_queue LIMIT queue_cap
        ) r;
        room := least(room, queue_cap - running);
    END IF;
    RETURN greatest(room, 0);
END
$$;
