//! [`PgDriver`]: the storage primitives on PostgreSQL, and [`PgStore`], the queue over
//! them (any number of nodes on one database).
//!
//! Every method is one statement (or one short transaction) whatever the batch size: arrays
//! are sent as parameters and expanded with `UNNEST`, so enqueueing 5,000 jobs or finishing
//! 500 costs one round trip. By concern: `sql.rs` (the statements), `rows.rs` (decoding
//! and binding, errors), `batch.rs` (enqueue batches), `listen.rs` (notifications between
//! nodes), `warm.rs` (connections kept out of the pool between statements).

mod batch;
mod children;
mod coalesce;
mod control;
mod deps;
mod listen;
mod rows;
mod schedules;
mod settings;
mod sql;
mod tenants;
mod warm;

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::types::Json;

use crate::queue::deps::Released;
use crate::queue::driver::{
    Applied, Cancelled, Driver, Finished, Inserted, KeyRow, Rescued, decode_state, outcome_columns,
    outcome_values,
};
use crate::queue::rows::Listed;
use crate::queue::{
    ChildJob, Finish, Job, JobCount, JobFilter, JobState, LOST_CANCELLED_MESSAGE, LOST_MESSAGE,
    MAX_HISTORY, Module, NewJob, NewModule, Progress, PutModule, Queue, StoreError, event_channel,
};
use rows::{
    bind_job, clamp_i32, clamp_i64, db_err, get, job_from_row, json, module_from_row,
    progress_json, seconds, to_u64,
};
#[doc(hidden)]
pub use sql::HOT_STATEMENTS;
use sql::*;
use warm::Warm;

/// `pg_try_advisory_xact_lock` key of the rescuer ("wasmq" in ASCII).
const RESCUE_LOCK: i64 = 0x0077_6173_6d71;
/// [`MAX_HISTORY`] as the statements bind it.
const HISTORY_BOUND: i32 = MAX_HISTORY as i32;

/// The store on PostgreSQL: the queue core over [`PgDriver`].
pub type PgStore = Queue<PgDriver>;

/// The PostgreSQL driver. Its listener stops when it is dropped.
pub struct PgDriver {
    /// Durable commits: enqueue, cancel, modules, rescue, prune.
    pool: Warm,
    /// `synchronous_commit = off`: the worker's claim, heartbeat, progress and finish.
    fast: Warm,
    /// Prefixed to the notifications this node sends, so its listener drops them.
    node: Arc<str>,
    _listener: listen::ListenerTask,
}

impl Queue<PgDriver> {
    /// Connects to `url` with a pool of at most `max_connections` (plus one dedicated
    /// notification connection), applies pending migrations (under sqlx's advisory lock, so
    /// nodes starting together are safe) and starts listening for notifications.
    pub async fn connect(url: &str, max_connections: u32) -> Result<PgStore, StoreError> {
        // Generic plans only: the hot statements take arrays, and PostgreSQL's choice
        // between a custom and a generic plan kept custom ones for them, planning every
        // enqueue again (planning cost more than execution for a single-job enqueue;
        // docs/perf-log.md). Every statement is written so its generic plan is right for
        // any batch size; the one that is not (ENQUEUE, with keys) asks for a custom plan.
        let options = PgConnectOptions::from_str(url)
            .map_err(db_err)?
            .options([("plan_cache_mode", "force_generic_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        // Claims, heartbeats, progress and finishes commit without waiting for the WAL
        // flush. A crash can lose the last few of them, and the queue stays correct: a
        // lost claim leaves the job waiting, a lost finish leaves it running until its
        // lease expires and it is run again (at-least-once, and the guarded finish keeps
        // it to one completion). Enqueues, cancels and modules stay fully durable.
        let fast_options = options.options([("synchronous_commit", "off")]);
        // Both pools test a connection when it is taken out and when it goes back; the
        // statements skip both tests while a connection is warm (see `warm`).
        let fast = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(fast_options)
            .await
            .map_err(db_err)?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "database migration failed");
                StoreError::Database(format!("applying the database migrations failed: {e}"))
            })?;
        let events = event_channel();
        let node: Arc<str> = format!("{:016x}", rand::random::<u64>()).into();
        let listener = listen::start(url, events.clone(), node.clone()).await?;
        let driver = PgDriver {
            pool: Warm::new(pool),
            fast: Warm::new(fast),
            node,
            _listener: listener,
        };
        Ok(Queue::new(driver, events))
    }
}

impl PgDriver {
    /// The (queue, state, n) rows of a count.
    async fn counts(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<JobCount>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = query.fetch_all(&mut *conn).await.map_err(db_err)?;
        conn.keep();
        rows.iter()
            .map(|row| {
                Ok(JobCount {
                    queue: get(row, "queue")?,
                    state: get::<String>(row, "state")?.parse()?,
                    count: to_u64("n", get(row, "n")?)?,
                })
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Driver for PgDriver {
    async fn insert_batch(&self, jobs: Vec<NewJob>) -> Result<Inserted, StoreError> {
        PgDriver::insert_batch(self, jobs).await
    }

    async fn latest_digest(&self, tenant: &str, name: &str) -> Result<Option<String>, StoreError> {
        let job = NewJob {
            tenant: tenant.to_owned(),
            ..NewJob::new(name, Vec::new())
        };
        Ok(self
            .latest_digests(std::slice::from_ref(&job))
            .await?
            .into_values()
            .next())
    }

    async fn job_id_by_key(&self, tenant: &str, key: &str) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let id = sqlx::query_scalar(JOB_ID_BY_KEY)
            .bind(tenant)
            .bind(key)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(id)
    }

    async fn draw_ids(&self, n: usize) -> Result<Vec<i64>, StoreError> {
        // On the durable pool: a sequence's advance is made durable by the commit of the
        // statement that logged it, so ids handed out are never drawn again after a crash.
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut drawn: Vec<i64> = sqlx::query_scalar(DRAW_IDS)
            .bind(i64::try_from(n).unwrap_or(i64::MAX))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        drawn.sort_unstable();
        Ok(drawn)
    }

    async fn insert_running(&self, job: &Job, lease: Duration) -> Result<Job, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = bind_job(sqlx::query(ENQUEUE_RUNNING), job)
            .bind(job.worker_id.as_deref())
            .bind(seconds(lease))
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        job_from_row(&row)
    }

    async fn insert_finished(&self, job: &Job, report: &Finish) -> Result<Job, StoreError> {
        let (state, error) = outcome_columns(&report.outcome);
        let (result, retry_at) = outcome_values(&report.outcome);
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let insert = bind_job(sqlx::query(ENQUEUE_FINISHED), job)
            .bind(state.as_str())
            .bind(result)
            .bind(error.as_ref().map(json))
            .bind(retry_at)
            .bind(json(&report.usage))
            .bind(report.log.as_str())
            .bind(clamp_i64(report.log_dropped))
            .bind(report.progress.as_ref().map(progress_json))
            .bind(&*self.node);
        let row = if state == JobState::Completed && !report.children.is_empty() {
            // Its children commit with it.
            let mut tx = conn.begin().await.map_err(db_err)?;
            let row = insert.fetch_one(&mut *tx).await.map_err(db_err)?;
            children::insert(&mut tx, &[(job.id, &report.children)], &self.node).await?;
            tx.commit().await.map_err(db_err)?;
            row
        } else {
            insert.fetch_one(&mut *conn).await.map_err(db_err)?
        };
        conn.keep();
        job_from_row(&row)
    }

    async fn claim(
        &self,
        tenant: Option<&str>,
        queue: &str,
        worker: &str,
        limit: usize,
        lease: Duration,
        max_running: Option<u64>,
    ) -> Result<Vec<Job>, StoreError> {
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let statement = sqlx::query(if tenant.is_some() {
            CLAIM_TENANT
        } else {
            CLAIM
        })
        .bind(queue)
        .bind(worker)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind(seconds(lease))
        .bind(max_running.map(crate::queue::rows::stored_count));
        let statement = match tenant {
            Some(tenant) => statement.bind(tenant),
            None => statement,
        };
        let rows = statement.fetch_all(&mut *conn).await.map_err(db_err)?;
        conn.keep();
        rows.iter().map(job_from_row).collect()
    }

    async fn heartbeat(
        &self,
        worker: &str,
        ids: &[i64],
        lease: Duration,
    ) -> Result<Vec<(i64, bool)>, StoreError> {
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let rows = sqlx::query(HEARTBEAT)
            .bind(worker)
            .bind(ids)
            .bind(seconds(lease))
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter()
            .map(|row| Ok((get(row, "id")?, get(row, "cancel_requested")?)))
            .collect()
    }

    async fn finish(&self, items: Vec<Finish>) -> Result<Finished, StoreError> {
        let n = items.len();
        let mut ids = Vec::with_capacity(n);
        let mut attempts = Vec::with_capacity(n);
        let mut states = Vec::with_capacity(n);
        let mut results: Vec<Option<&[u8]>> = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut retry_ats = Vec::with_capacity(n);
        let mut usages = Vec::with_capacity(n);
        let mut logs = Vec::with_capacity(n);
        let mut log_dropped = Vec::with_capacity(n);
        let mut progress = Vec::with_capacity(n);
        for item in &items {
            let (state, error) = outcome_columns(&item.outcome);
            let (result, retry_at) = outcome_values(&item.outcome);
            ids.push(item.id);
            attempts.push(clamp_i32(item.attempt));
            states.push(state.as_str());
            results.push(result);
            errors.push(error.as_ref().map(json));
            retry_ats.push(retry_at);
            usages.push(json(&item.usage));
            logs.push(item.log.as_str());
            log_dropped.push(clamp_i64(item.log_dropped));
            progress.push(item.progress.as_ref().map(progress_json));
        }
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let finish = sqlx::query(FINISH)
            .bind(&ids)
            .bind(&attempts)
            .bind(&states)
            .bind(&results)
            .bind(&errors)
            .bind(&retry_ats)
            .bind(&usages)
            .bind(&logs)
            .bind(&log_dropped)
            .bind(&progress)
            .bind(&*self.node)
            .bind(HISTORY_BOUND);
        let rows = if items.iter().any(|item| !item.children.is_empty()) {
            // Children commit with their parents' completion, or not at all.
            let mut tx = conn.begin().await.map_err(db_err)?;
            let rows = finish.fetch_all(&mut *tx).await.map_err(db_err)?;
            let completed: HashSet<i64> = rows
                .iter()
                .filter(|row| {
                    !get::<bool>(row, "dependent").unwrap_or(false)
                        && get::<String>(row, "state").is_ok_and(|s| s == "completed")
                })
                .filter_map(|row| get::<i64>(row, "id").ok())
                .collect();
            let parents: Vec<(i64, &[ChildJob])> = items
                .iter()
                .filter(|item| completed.contains(&item.id))
                .map(|item| (item.id, item.children.as_slice()))
                .collect();
            children::insert(&mut tx, &parents, &self.node).await?;
            tx.commit().await.map_err(db_err)?;
            rows
        } else {
            finish.fetch_all(&mut *conn).await.map_err(db_err)?
        };
        conn.keep();
        let (dependents, rows): (Vec<_>, Vec<_>) = rows
            .iter()
            .partition(|row| get::<bool>(row, "dependent").unwrap_or(false));
        let mut applied = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let state: String = get(row, "state")?;
            let applied_row = Applied {
                state: state.parse()?,
                queue: get(row, "queue")?,
            };
            applied.insert(get::<i64>(row, "id")?, applied_row);
        }
        Ok(Finished {
            applied: ids.iter().map(|id| applied.remove(id)).collect(),
            released: deps::released(dependents)?,
        })
    }

    async fn set_progress(
        &self,
        id: i64,
        attempt: u32,
        progress: &Progress,
    ) -> Result<bool, StoreError> {
        let mut conn = self.fast.get().await.map_err(db_err)?;
        let done = sqlx::query(SET_PROGRESS)
            .bind(id)
            .bind(clamp_i32(attempt))
            .bind(progress_json(progress))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(done.rows_affected() == 1)
    }

    async fn rescue(&self) -> Result<Option<(Vec<Rescued>, Released)>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        // One node at a time; a concurrent call is told so.
        let locked: bool = sqlx::query_scalar(TRY_RESCUE_LOCK)
            .bind(RESCUE_LOCK)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !locked {
            tx.rollback().await.map_err(db_err)?;
            conn.keep();
            return Ok(None);
        }
        let rows = sqlx::query(RESCUE)
            .bind(LOST_MESSAGE)
            .bind(LOST_CANCELLED_MESSAGE)
            .bind(HISTORY_BOUND)
            .bind(&*self.node)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        let rescued = rows
            .iter()
            .map(|row| {
                Ok(Rescued {
                    id: get(row, "id")?,
                    state: get::<String>(row, "state")?.parse()?,
                    queue: get(row, "queue")?,
                    worker: get(row, "worker_id")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Jobs that ended failed or cancelled take their dependents with them.
        let (ended, states): (Vec<i64>, Vec<&str>) = rescued
            .iter()
            .filter(|job| job.state != JobState::Retryable)
            .map(|job| (job.id, job.state.as_str()))
            .unzip();
        let released = if ended.is_empty() {
            Released::default()
        } else {
            let rows = sqlx::query(RESCUE_DEPENDENTS)
                .bind(&ended)
                .bind(&states)
                .bind(&*self.node)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
            deps::released(&rows)?
        };
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(Some((rescued, released)))
    }

    async fn promote(&self, limit: u32) -> Result<Vec<String>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let queues = sqlx::query_scalar(PROMOTE)
            .bind(i64::from(limit))
            .bind(&*self.node)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(queues)
    }

    async fn cancel(&self, tenant: &str, id: i64) -> Result<Option<Cancelled>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(CANCEL)
            .bind(tenant)
            .bind(id)
            .bind(&*self.node)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.map(|row| {
            Ok(Cancelled {
                job: job_from_row(&row)?,
                now: get(&row, "cancelled_now")?,
                released: Released {
                    available: Vec::new(),
                    cancelled: get(&row, "cascaded")?,
                },
            })
        })
        .transpose()
    }

    async fn get(&self, tenant: &str, id: i64) -> Result<Option<Job>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(GET)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(job_from_row).transpose()
    }

    async fn list<T: Listed>(
        &self,
        tenant: &str,
        filter: &JobFilter,
    ) -> Result<Vec<T>, StoreError> {
        let mut query = list_query(tenant, filter, i64::from(filter.limit), T::COLUMNS);
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = query.build().fetch_all(&mut *conn).await.map_err(db_err)?;
        conn.keep();
        rows.iter().map(T::from_row).collect()
    }

    async fn job_state(&self, tenant: &str, id: i64) -> Result<Option<JobState>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let state: Option<String> = sqlx::query_scalar(JOB_STATE)
            .bind(tenant)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        decode_state(state)
    }

    async fn prune(&self, older_than: Duration, limit: u32) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let deleted: i64 = sqlx::query_scalar(PRUNE)
            .bind(seconds(older_than))
            .bind(i64::from(limit))
            .fetch_one(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        to_u64("deleted", deleted)
    }

    async fn sweep_blobs(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        sqlx::query(SWEEP_BLOBS)
            .bind(None::<Vec<String>>)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn count_jobs(&self) -> Result<Vec<JobCount>, StoreError> {
        self.counts(sqlx::query(COUNT_JOBS)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A round trip to the server even on a warm connection.
        let mut conn = self.pool.get().await.map_err(db_err)?;
        conn.ping().await.map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn put_module(
        &self,
        module: &NewModule,
        unchanged: &(dyn for<'m> Fn(&'m Module) -> bool + Send + Sync),
    ) -> Result<PutModule, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        sqlx::query(LOCK_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let latest = sqlx::query(LATEST_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?
            .as_ref()
            .map(module_from_row)
            .transpose()?;
        if let Some(latest) = latest.as_ref().filter(|latest| unchanged(latest)) {
            tx.rollback().await.map_err(db_err)?;
            conn.keep();
            return Ok(PutModule {
                module: latest.clone(),
                created: false,
            });
        }
        sqlx::query(PUT_BLOB)
            .bind(&module.digest)
            .bind(&module.bytes)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let version = latest.map_or(1, |m| m.version.saturating_add(1));
        let row = sqlx::query(INSERT_MODULE)
            .bind(&module.tenant)
            .bind(&module.name)
            .bind(clamp_i32(version))
            .bind(&module.digest)
            .bind(i64::try_from(module.bytes.len()).unwrap_or(i64::MAX))
            .bind(module.kind.as_str())
            .bind(Json(&module.limits))
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        let stored = module_from_row(&row)?;
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(PutModule {
            module: stored,
            created: true,
        })
    }

    async fn get_module(&self, tenant: &str, name: &str) -> Result<Option<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(LATEST_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.as_ref().map(module_from_row).transpose()
    }

    async fn module_versions(&self, tenant: &str, name: &str) -> Result<Vec<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(MODULE_VERSIONS)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(module_from_row).collect()
    }

    async fn list_modules(&self, tenant: &str) -> Result<Vec<Module>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(LIST_MODULES)
            .bind(tenant)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        rows.iter().map(module_from_row).collect()
    }

    async fn delete_module(&self, tenant: &str, name: &str) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let mut tx = conn.begin().await.map_err(db_err)?;
        let digests: Vec<String> = sqlx::query_scalar(DELETE_MODULE)
            .bind(tenant)
            .bind(name)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
        if digests.is_empty() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(SWEEP_BLOBS)
            .bind(Some(&digests))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn module_bytes(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let bytes = sqlx::query_scalar(MODULE_BYTES)
            .bind(digest)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(bytes)
    }

    async fn insert_key(
        &self,
        id: &str,
        name: Option<&str>,
        key: &KeyRow,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        sqlx::query(INSERT_KEY)
            .bind(id)
            .bind(&key.tenant)
            .bind(name)
            .bind(&key.hash)
            .bind(&key.scopes)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(())
    }

    async fn key(&self, id: &str) -> Result<Option<KeyRow>, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let row = sqlx::query(KEY)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        row.map(|row| {
            Ok(KeyRow {
                tenant: get(&row, "tenant")?,
                hash: get(&row, "hash")?,
                scopes: get(&row, "scopes")?,
            })
        })
        .transpose()
    }

    async fn revoke_key(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let done = sqlx::query(REVOKE_KEY)
            .bind(tenant)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        Ok(done.rows_affected() > 0)
    }
}
