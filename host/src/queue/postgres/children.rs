//! Child jobs on PostgreSQL: inserted in the transaction that completes their parent,
//! with the ids their guest was told (drawn at the call), in one statement for all.

use sqlx::PgConnection;

use super::rows::{clamp_i32, db_err, json};
use crate::queue::{ChildJob, StoreError};

/// `$1..$13`: the children's columns; `$14`: the node's id, for the notification of
/// their queues. A child whose idempotency key a stored job of the tenant has is not
/// stored (the guest was told that job's id if it was stored at the call).
const INSERT_CHILDREN: &str = r#"
WITH ins AS (
    INSERT INTO wasmq_jobs (id, tenant, module, digest, queue, priority, input, state, run_at,
                            max_attempts, limits, idempotency_key, parent_id, depth)
    SELECT c.id, c.tenant, c.module, c.digest, c.queue, c.priority, c.input,
           CASE WHEN c.run_at > now() THEN 'scheduled' ELSE 'available' END,
           COALESCE(c.run_at, now()), c.max_attempts, c.limits, c.idempotency_key,
           c.parent_id, c.depth
    FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::smallint[],
                $7::bytea[], $8::timestamptz[], $9::int[], $10::jsonb[], $11::text[],
                $12::bigint[], $13::smallint[])
         AS c(id, tenant, module, digest, queue, priority, input, run_at, max_attempts,
              limits, idempotency_key, parent_id, depth)
    ORDER BY c.id
    ON CONFLICT (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING queue, state
),
woken AS (
    SELECT pg_notify('wasmq_jobs', $14 || ' ' || q.queue)
    FROM (SELECT DISTINCT queue FROM ins WHERE state = 'available') q
)
SELECT count(*) AS n FROM ins WHERE (SELECT count(*) FROM woken) >= 0
"#;

/// Bytes of inputs one statement carries at most: a finish batch of many attempts, each
/// with megabytes of children, goes in several statements, never one message near
/// PostgreSQL's 1 GB limit.
const STATEMENT_BYTES: usize = 32 << 20;

/// Inserts the children of parents `parents` (the completed ones), on `conn` inside
/// the caller's transaction.
pub(super) async fn insert(
    conn: &mut PgConnection,
    parents: &[(i64, &[ChildJob])],
    node: &str,
) -> Result<(), StoreError> {
    let mut cols = Columns::default();
    for (parent, children) in parents {
        for child in *children {
            if cols.bytes + child.job.input.len() > STATEMENT_BYTES && !cols.ids.is_empty() {
                execute(&mut *conn, std::mem::take(&mut cols), node).await?;
            }
            cols.push(*parent, child);
        }
    }
    if !cols.ids.is_empty() {
        execute(conn, cols, node).await?;
    }
    Ok(())
}

async fn execute(conn: &mut PgConnection, cols: Columns<'_>, node: &str) -> Result<(), StoreError> {
    sqlx::query(INSERT_CHILDREN)
        .bind(&cols.ids)
        .bind(&cols.tenants)
        .bind(&cols.modules)
        .bind(&cols.digests)
        .bind(&cols.queues)
        .bind(&cols.priorities)
        .bind(&cols.inputs)
        .bind(&cols.run_ats)
        .bind(&cols.max_attempts)
        .bind(&cols.limits)
        .bind(&cols.keys)
        .bind(&cols.parents)
        .bind(&cols.depths)
        .bind(node)
        .execute(conn)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The children as the statement's arrays.
#[derive(Default)]
struct Columns<'a> {
    ids: Vec<i64>,
    tenants: Vec<&'a str>,
    modules: Vec<&'a str>,
    digests: Vec<Option<&'a str>>,
    queues: Vec<&'a str>,
    priorities: Vec<i16>,
    inputs: Vec<&'a [u8]>,
    run_ats: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    max_attempts: Vec<i32>,
    limits: Vec<serde_json::Value>,
    keys: Vec<Option<&'a str>>,
    parents: Vec<i64>,
    depths: Vec<i16>,
    /// Bytes of `inputs`.
    bytes: usize,
}

impl<'a> Columns<'a> {
    fn push(&mut self, parent: i64, child: &'a ChildJob) {
        let job = &child.job;
        self.ids.push(child.id);
        self.tenants.push(&job.tenant);
        self.modules.push(&job.module);
        self.digests.push(job.digest.as_deref());
        self.queues.push(&job.queue);
        self.priorities.push(job.priority);
        self.inputs.push(&job.input);
        self.bytes += job.input.len();
        self.run_ats.push(job.run_at);
        self.max_attempts.push(clamp_i32(job.max_attempts));
        self.limits.push(json(&job.limits));
        self.keys.push(job.idempotency_key.as_deref());
        self.parents.push(parent);
        self.depths
            .push(i16::try_from(child.depth).unwrap_or(i16::MAX));
    }
}
