//! Enqueue batches on SQLite: one transaction of multi-row `INSERT … RETURNING id`
//! statements (256, 128, …, 1 rows) for keyless jobs, a look-up then an insert for each
//! job with an idempotency key, and an update or an insert for each coalescing one; then
//! the batch's dependencies (`deps.rs`).

use std::collections::HashMap;

use chrono::Utc;
use sqlx::{Sqlite, Transaction};

use super::SqliteDriver;
use super::coalesce;
use super::rows::{db_err, from_micros, job_from_row, json_text, micros};
use super::sql::{BY_IDEMPOTENCY_KEY, INSERT_JOB, LATEST_DIGEST};
use crate::queue::{Enqueued, Job, JobState, NewJob, StoreError, deps};

/// Most rows one multi-row `INSERT` takes (12 parameters each, far below SQLite's
/// 32,766). A run of keyless jobs is written in statements of 256, 128, …, 1 rows, so at
/// most nine statement texts exist and each stays prepared.
const ROWS_PER_INSERT: usize = 256;

/// A keyless job of a batch, waiting to go in with the run it belongs to.
struct PlainRow<'a> {
    /// Its place in the batch's answer.
    at: usize,
    new: &'a NewJob,
    digest: String,
    state: JobState,
    run_at: i64,
}

/// Writes `rows` (keyless jobs, in batch order) with one `INSERT … VALUES (…), (…)` per
/// [`ROWS_PER_INSERT`] rows, reading back only the ids, and answers each row in `out`.
///
/// Every statement is a trip to sqlx's SQLite thread and back, so rows go in many to a
/// statement and only the ids are read back: the rest of the stored job is what was
/// written (`now` is the batch's one time). The one writer
/// holds the transaction, so a statement's rows take consecutive ids in `VALUES` order;
/// `RETURNING` may list them in any order, so they are sorted.
async fn insert_plain(
    tx: &mut Transaction<'static, Sqlite>,
    rows: &mut Vec<PlainRow<'_>>,
    now: i64,
    out: &mut [Option<Enqueued>],
) -> Result<(), StoreError> {
    let created_at = from_micros("created_at", now)?;
    let mut rest = &rows[..];
    while !rest.is_empty() {
        let take = ROWS_PER_INSERT.min(1 << rest.len().ilog2());
        let (chunk, tail) = rest.split_at(take);
        rest = tail;
        let mut q = sqlx::QueryBuilder::new(
            "INSERT INTO wasmq_jobs (tenant, module, digest, queue, priority, input, state, \
             run_at, max_attempts, limits, idempotency_key, created_at) ",
        );
        q.push_values(chunk, |mut b, row| {
            b.push_bind(row.new.tenant.as_str())
                .push_bind(row.new.module.as_str())
                .push_bind(row.digest.as_str())
                .push_bind(row.new.queue.as_str())
                .push_bind(i64::from(row.new.priority))
                .push_bind(row.new.input.as_slice())
                .push_bind(row.state.as_str())
                .push_bind(row.run_at)
                .push_bind(i64::from(row.new.max_attempts))
                .push_bind(json_text(&row.new.limits))
                .push_bind(None::<&str>)
                .push_bind(now);
        });
        q.push(" RETURNING id");
        let mut ids: Vec<i64> = q
            .build_query_scalar()
            .fetch_all(&mut **tx)
            .await
            .map_err(db_err)?;
        if ids.len() != chunk.len() {
            return Err(StoreError::Database(format!(
                "{} of {} jobs were inserted, but the answers do not line up with the batch",
                ids.len(),
                chunk.len()
            )));
        }
        ids.sort_unstable();
        for (row, id) in chunk.iter().zip(ids) {
            let run_at = from_micros("run_at", row.run_at)?;
            let job = Job::just_enqueued(
                row.new.clone(),
                id,
                row.digest.clone(),
                row.state,
                run_at,
                created_at,
            );
            out[row.at] = Some(Enqueued {
                job,
                duplicate: false,
                coalesced: false,
            });
        }
    }
    rows.clear();
    Ok(())
}

impl SqliteDriver {
    /// [`crate::queue::Driver::insert_batch`]: one transaction; keyless jobs go in runs
    /// of multi-row statements, keyed ones one by one after a look-up of their key.
    pub(super) async fn insert_jobs(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, StoreError> {
        let now = micros(Utc::now());
        let mut tx = self.begin_write().await?;
        let mut pins: HashMap<(&str, &str), Option<String>> = HashMap::new();
        // (tenant, key) → index in `out` of the job that holds the key.
        let mut keyed: HashMap<(&str, &str), usize> = HashMap::new();
        // Answers in batch order; keyless ones are filled in when their run is written.
        let mut out: Vec<Option<Enqueued>> = Vec::with_capacity(jobs.len());
        let mut plain: Vec<PlainRow> = Vec::new();
        for new in &jobs {
            if let Some(key) = new.idempotency_key.as_deref() {
                // Ids follow the batch's order: the keyless jobs before this one go first.
                insert_plain(&mut tx, &mut plain, now, &mut out).await?;
                if let Some(&i) = keyed.get(&(new.tenant.as_str(), key)) {
                    let job = out[i].as_ref().map(|e| e.job.clone());
                    out.push(job.map(|job| Enqueued {
                        job,
                        duplicate: true,
                        coalesced: false,
                    }));
                    continue;
                }
                let existing = sqlx::query(BY_IDEMPOTENCY_KEY)
                    .bind(&new.tenant)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if let Some(row) = existing {
                    keyed.insert((new.tenant.as_str(), key), out.len());
                    out.push(Some(Enqueued {
                        job: job_from_row(&row)?,
                        duplicate: true,
                        coalesced: false,
                    }));
                    continue;
                }
            }
            let digest = match &new.digest {
                Some(digest) => digest.clone(),
                None => {
                    let pin_key = (new.tenant.as_str(), new.module.as_str());
                    let pin = match pins.get(&pin_key) {
                        Some(pin) => pin.clone(),
                        None => {
                            let pin: Option<String> = sqlx::query_scalar(LATEST_DIGEST)
                                .bind(&new.tenant)
                                .bind(&new.module)
                                .fetch_optional(&mut *tx)
                                .await
                                .map_err(db_err)?;
                            pins.insert(pin_key, pin.clone());
                            pin
                        }
                    };
                    // Dropping the transaction rolls the whole batch back.
                    pin.ok_or_else(|| StoreError::ModuleNotFound {
                        module: new.module.clone(),
                    })?
                }
            };
            if let Some(key) = &new.coalesce {
                // Ids follow the batch's order, as for a keyed job.
                insert_plain(&mut tx, &mut plain, now, &mut out).await?;
                out.push(Some(
                    coalesce::upsert(&mut tx, new, key, &digest, now).await?,
                ));
                continue;
            }
            let run_at = new.run_at.map_or(now, micros);
            let state = if run_at > now {
                JobState::Scheduled
            } else {
                JobState::Available
            };
            if new.idempotency_key.is_none() {
                plain.push(PlainRow {
                    at: out.len(),
                    new,
                    digest,
                    state,
                    run_at,
                });
                out.push(None);
                if plain.len() == ROWS_PER_INSERT {
                    insert_plain(&mut tx, &mut plain, now, &mut out).await?;
                }
                continue;
            }
            let row = sqlx::query(INSERT_JOB)
                .bind(&new.tenant)
                .bind(&new.module)
                .bind(digest)
                .bind(&new.queue)
                .bind(i64::from(new.priority))
                .bind(new.input.as_slice())
                .bind(state.as_str())
                .bind(run_at)
                .bind(i64::from(new.max_attempts))
                .bind(json_text(&new.limits))
                .bind(new.idempotency_key.as_deref())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            if let Some(key) = new.idempotency_key.as_deref() {
                keyed.insert((new.tenant.as_str(), key), out.len());
            }
            out.push(Some(Enqueued {
                job: job_from_row(&row)?,
                duplicate: false,
                coalesced: false,
            }));
        }
        insert_plain(&mut tx, &mut plain, now, &mut out).await?;
        let mut out = out
            .into_iter()
            .collect::<Option<Vec<Enqueued>>>()
            .ok_or_else(|| StoreError::Database("a job of the batch was not answered".into()))?;
        if deps::any(&jobs) {
            super::deps::attach(&mut tx, &jobs, &mut out, now).await?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(out)
    }
}
