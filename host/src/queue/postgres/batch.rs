//! Enqueue batches on PostgreSQL: one statement for the whole batch whatever its size.
//! A batch without idempotency keys is one join-free `INSERT … SELECT FROM UNNEST` that
//! sends what its jobs share once per distinct kind; one with keys runs [`ENQUEUE`] (and
//! its coalescing jobs `coalesce.rs`) in a transaction that is rolled back (and tried
//! again by the core) if a key raced. A batch with dependencies runs in a transaction
//! with their attachment (`deps.rs`), the statements above in savepoints.

use std::collections::{HashMap, HashSet};

use sqlx::{Connection, PgConnection};

use super::PgDriver;
use super::coalesce;
use super::rows::{clamp_i32, db_err, get, job_from_row, json};
use super::sql::{ENQUEUE, ENQUEUE_PINNED, LATEST_DIGESTS, MISSING_MODULES};
use crate::queue::driver::{Inserted, decode_err};
use crate::queue::{Enqueued, Job, JobState, Limits, NewJob, StoreError, deps};

impl PgDriver {
    /// [`crate::queue::Driver::insert_batch`].
    pub(super) async fn insert_batch(&self, jobs: Vec<NewJob>) -> Result<Inserted, StoreError> {
        let mut conn = self.pool.get().await.map_err(db_err)?;
        if deps::any(&jobs) {
            // The batch and its dependencies commit together (see `deps.rs`).
            let mut tx = conn.begin().await.map_err(db_err)?;
            let Some(answers) = self.try_enqueue(&mut tx, &jobs).await? else {
                tx.rollback().await.map_err(db_err)?;
                conn.keep();
                return Ok(Inserted::Raced(jobs));
            };
            let requests: Vec<NewJob> = jobs
                .iter()
                .map(|job| NewJob {
                    input: Vec::new(),
                    ..job.clone()
                })
                .collect();
            let mut enqueued = answered(answers, jobs);
            super::deps::attach(&mut tx, &requests, &mut enqueued).await?;
            tx.commit().await.map_err(db_err)?;
            conn.keep();
            return Ok(Inserted::Done(enqueued));
        }
        let answers = self.try_enqueue(&mut conn, &jobs).await?;
        conn.keep();
        Ok(match answers {
            Some(answers) => Inserted::Done(answered(answers, jobs)),
            None => Inserted::Raced(jobs),
        })
    }

    async fn try_enqueue(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<Option<Vec<Answer>>, StoreError> {
        if jobs
            .iter()
            .all(|job| job.idempotency_key.is_none() && job.coalesce.is_none())
        {
            return self.enqueue_keyless(conn, jobs).await.map(Some);
        }
        let n = jobs.len();
        // Coalescing jobs take their own statement, the rest ENQUEUE; same transaction.
        let (coalescing, plain): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&i| jobs[i].coalesce.is_some());
        // A row can lose a race with a concurrent insert of its key while the rest go
        // in, so a batch with keys runs in a transaction that is rolled back and retried,
        // planned for its actual size (a generic plan expects ten rows and nests loops).
        let mut tx = conn.begin().await.map_err(db_err)?;
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        let mut out: Vec<Option<Enqueued>> = vec![None; n];
        if !plain.is_empty() {
            let batch: Vec<&NewJob> = plain.iter().map(|&i| &jobs[i]).collect();
            let columns = Columns::new(&batch, &self.node);
            let rows = columns.bind().fetch_all(&mut *tx).await.map_err(db_err)?;
            for row in &rows {
                let ord: i64 = get(row, "ord")?;
                let slot = usize::try_from(ord - 1)
                    .ok()
                    .and_then(|i| plain.get(i))
                    .and_then(|&i| out.get_mut(i))
                    .ok_or_else(|| decode_err("ord", ord))?;
                *slot = Some(Enqueued {
                    job: job_from_row(row)?,
                    duplicate: get(row, "duplicate")?,
                    coalesced: false,
                });
            }
        }
        if !coalescing.is_empty() {
            let batch: Vec<&NewJob> = coalescing.iter().map(|&i| &jobs[i]).collect();
            let answers = coalesce::upsert(&batch, &self.node, &mut *tx).await?;
            for (i, answer) in coalescing.into_iter().zip(answers) {
                out[i] = answer;
            }
        }
        if out.iter().all(Option::is_some) {
            tx.commit().await.map_err(db_err)?;
            return Ok(Some(
                out.into_iter()
                    .flatten()
                    .map(|e| Answer::Read(Box::new(e)))
                    .collect(),
            ));
        }
        // Some rows got no job: a module without versions, or a key inserted concurrently.
        let unanswered = jobs.iter().zip(&out).filter(|(_, slot)| slot.is_none());
        let missing = missing_module(unanswered.map(|(job, _)| job), &mut *tx).await;
        tx.rollback().await.map_err(db_err)?;
        missing?;
        Ok(None)
    }

    /// A batch without idempotency keys: unpinned jobs are pinned to their module's
    /// latest version (one query for the batch's modules), then [`ENQUEUE_PINNED`]. It
    /// reads back only what the store chose (id, state, times); the caller builds each
    /// job from its request.
    async fn enqueue_keyless(
        &self,
        conn: &mut PgConnection,
        jobs: &[NewJob],
    ) -> Result<Vec<Answer>, StoreError> {
        let latest = self.latest_digests(jobs).await?;
        let (first, n) = Pinned::new(jobs, &latest, &self.node)?;
        if n == jobs.len() {
            return first.insert(&mut *conn).await;
        }
        // More kinds than one statement takes: one statement per run of jobs, in one
        // transaction (all or nothing, one durable commit).
        let mut tx = conn.begin().await.map_err(db_err)?;
        let mut answers = first.insert(&mut *tx).await?;
        let mut done = n;
        while done < jobs.len() {
            let (batch, n) = Pinned::new(&jobs[done..], &latest, &self.node)?;
            answers.extend(batch.insert(&mut *tx).await?);
            done += n;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(answers)
    }

    /// The latest digest of each module that `jobs` name without a digest, by (tenant,
    /// name). A module with no version is missing from it ([`Pinned::new`] says which).
    pub(super) async fn latest_digests<'a>(
        &self,
        jobs: &'a [NewJob],
    ) -> Result<HashMap<(&'a str, &'a str), String>, StoreError> {
        let wanted: HashSet<(&str, &str)> = jobs
            .iter()
            .filter(|job| job.digest.is_none())
            .map(|job| (job.tenant.as_str(), job.module.as_str()))
            .collect();
        if wanted.is_empty() {
            return Ok(HashMap::new());
        }
        let (tenants, names): (Vec<&str>, Vec<&str>) = wanted.iter().copied().unzip();
        let mut conn = self.pool.get().await.map_err(db_err)?;
        let rows = sqlx::query(LATEST_DIGESTS)
            .bind(&tenants)
            .bind(&names)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_err)?;
        conn.keep();
        let mut found: HashMap<(String, String), String> = HashMap::with_capacity(rows.len());
        for row in &rows {
            found.insert(
                (get(row, "tenant")?, get(row, "name")?),
                get(row, "digest")?,
            );
        }
        Ok(wanted
            .into_iter()
            .filter_map(|(tenant, name)| {
                let digest = found.remove(&(tenant.to_owned(), name.to_owned()))?;
                Some(((tenant, name), digest))
            })
            .collect())
    }
}

/// The batch's answers as stored jobs, in batch order.
fn answered(answers: Vec<Answer>, jobs: Vec<NewJob>) -> Vec<Enqueued> {
    answers
        .into_iter()
        .zip(jobs)
        .map(|(answer, job)| answer.into_enqueued(job))
        .collect()
}

/// The store's answer to one job of an enqueue, in batch order.
enum Answer {
    /// A new job, of which only what the store chose was read back: its id, its pinned
    /// digest and the time of the statement (its `now()`).
    Inserted {
        id: i64,
        digest: String,
        at: chrono::DateTime<chrono::Utc>,
    },
    /// The whole stored job (a batch with idempotency keys).
    Read(Box<Enqueued>),
}

impl Answer {
    /// The job as stored: for an inserted one, what [`ENQUEUE_PINNED`] wrote (`CASE WHEN
    /// run_at > now() THEN 'scheduled' ELSE 'available'`, `COALESCE(run_at, now())`,
    /// `max_attempts` clamped to the integer column, times in microseconds as sqlx sends
    /// them) and the rest of the request.
    fn into_enqueued(self, job: NewJob) -> Enqueued {
        match self {
            Answer::Inserted { id, digest, at } => {
                let run_at = job.run_at.map(|t| chrono::SubsecRound::trunc_subsecs(t, 6));
                let state = match run_at {
                    Some(t) if t > at => JobState::Scheduled,
                    _ => JobState::Available,
                };
                let job = NewJob {
                    max_attempts: job.max_attempts.min(i32::MAX as u32),
                    ..job
                };
                Enqueued {
                    job: Job::just_enqueued(job, id, digest, state, run_at.unwrap_or(at), at),
                    duplicate: false,
                    coalesced: false,
                }
            }
            Answer::Read(enqueued) => *enqueued,
        }
    }
}

/// Fails with [`StoreError::ModuleNotFound`] if one of `jobs` (those the enqueue did not
/// answer) names a module that has no version.
async fn missing_module<'a>(
    jobs: impl Iterator<Item = &'a NewJob>,
    db: impl sqlx::PgExecutor<'_>,
) -> Result<(), StoreError> {
    let (tenants, names): (Vec<&str>, Vec<&str>) = jobs
        .filter(|job| job.digest.is_none())
        .map(|job| (job.tenant.as_str(), job.module.as_str()))
        .unzip();
    let missing = sqlx::query(MISSING_MODULES)
        .bind(&tenants)
        .bind(&names)
        .fetch_all(db)
        .await
        .map_err(db_err)?;
    match missing.first() {
        Some(row) => Err(StoreError::ModuleNotFound {
            module: get(row, "name")?,
        }),
        None => Ok(()),
    }
}

/// A batch of new jobs with idempotency keys as columns: the parameters of [`ENQUEUE`],
/// one array each.
struct Columns<'a> {
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
    /// The enqueuing store's id, for its notifications.
    node: &'a str,
}

impl<'a> Columns<'a> {
    fn new(jobs: &[&'a NewJob], node: &'a str) -> Self {
        Columns {
            node,
            tenants: jobs.iter().map(|j| j.tenant.as_str()).collect(),
            modules: jobs.iter().map(|j| j.module.as_str()).collect(),
            digests: jobs.iter().map(|j| j.digest.as_deref()).collect(),
            queues: jobs.iter().map(|j| j.queue.as_str()).collect(),
            priorities: jobs.iter().map(|j| j.priority).collect(),
            inputs: jobs.iter().map(|j| j.input.as_slice()).collect(),
            run_ats: jobs.iter().map(|j| j.run_at).collect(),
            max_attempts: jobs.iter().map(|j| clamp_i32(j.max_attempts)).collect(),
            limits: jobs.iter().map(|j| json(&j.limits)).collect(),
            keys: jobs.iter().map(|j| j.idempotency_key.as_deref()).collect(),
        }
    }

    fn bind(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(ENQUEUE)
            .bind(&self.tenants)
            .bind(&self.modules)
            .bind(&self.digests)
            .bind(&self.queues)
            .bind(&self.priorities)
            .bind(&self.inputs)
            .bind(&self.run_ats)
            .bind(&self.max_attempts)
            .bind(&self.limits)
            .bind(&self.keys)
            .bind(self.node)
    }
}

/// The distinct (tenant, module, digest, queue, limits) of a batch, one array each.
#[derive(Default)]
struct Kinds<'a> {
    tenants: Vec<&'a str>,
    modules: Vec<&'a str>,
    digests: Vec<&'a str>,
    queues: Vec<&'a str>,
    limits: Vec<serde_json::Value>,
}

/// A keyless, pinned batch as the parameters of [`ENQUEUE_PINNED`].
struct Pinned<'a> {
    kinds: Kinds<'a>,
    /// Per job: its kind's number, from 1 (a PostgreSQL array subscript).
    kind: Vec<i32>,
    priorities: Vec<i16>,
    inputs: Vec<&'a [u8]>,
    run_ats: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    max_attempts: Vec<i32>,
    /// The enqueuing store's id, for its notifications.
    node: &'a str,
}

/// At most this many kinds go in one [`ENQUEUE_PINNED`]: PostgreSQL finds an array's
/// k-th text or JSON element by walking the k-1 before it, so a batch whose jobs all
/// differ would cost jobs × kinds. A batch with more is split (see
/// [`PgDriver::enqueue_keyless`]).
const MAX_KINDS: usize = 64;

impl<'a> Pinned<'a> {
    /// The longest prefix of `jobs` with at most [`MAX_KINDS`] kinds, and its length;
    /// [`StoreError::ModuleNotFound`] for the first job whose module has no version.
    fn new(
        jobs: &'a [NewJob],
        latest: &'a HashMap<(&'a str, &'a str), String>,
        node: &'a str,
    ) -> Result<(Self, usize), StoreError> {
        type Kind<'k> = (&'k str, &'k str, &'k str, &'k str, &'k Limits);
        let mut numbers: HashMap<Kind<'a>, i32> = HashMap::new();
        let mut kinds = Kinds::default();
        let mut kind = Vec::with_capacity(jobs.len());
        // The kind of the job before: a batch's jobs mostly share one, and comparing with
        // it is cheaper than hashing every job's kind.
        let mut last: Option<(Kind<'a>, i32)> = None;
        for job in jobs {
            let digest = match &job.digest {
                Some(d) => d.as_str(),
                None => latest
                    .get(&(job.tenant.as_str(), job.module.as_str()))
                    .ok_or_else(|| StoreError::ModuleNotFound {
                        module: job.module.clone(),
                    })?
                    .as_str(),
            };
            let key = (
                job.tenant.as_str(),
                job.module.as_str(),
                digest,
                job.queue.as_str(),
                &job.limits,
            );
            if let Some((last_key, number)) = last
                && last_key == key
            {
                kind.push(number);
                continue;
            }
            if numbers.len() == MAX_KINDS && !numbers.contains_key(&key) {
                break;
            }
            let next = i32::try_from(numbers.len() + 1).unwrap_or(i32::MAX);
            let number = *numbers.entry(key).or_insert_with(|| {
                kinds.tenants.push(key.0);
                kinds.modules.push(key.1);
                kinds.digests.push(key.2);
                kinds.queues.push(key.3);
                kinds.limits.push(json(key.4));
                next
            });
            last = Some((key, number));
            kind.push(number);
        }
        let jobs = &jobs[..kind.len()];
        let batch = Pinned {
            kinds,
            kind,
            priorities: jobs.iter().map(|j| j.priority).collect(),
            inputs: jobs.iter().map(|j| j.input.as_slice()).collect(),
            run_ats: jobs.iter().map(|j| j.run_at).collect(),
            max_attempts: jobs.iter().map(|j| clamp_i32(j.max_attempts)).collect(),
            node,
        };
        Ok((batch, jobs.len()))
    }

    /// Runs the statement and answers each of the batch's jobs.
    async fn insert(&self, db: impl sqlx::PgExecutor<'_>) -> Result<Vec<Answer>, StoreError> {
        let rows = self.bind().fetch_all(db).await.map_err(db_err)?;
        // All or nothing (one statement): a short answer would be a bug, so it is an error.
        if rows.len() != self.kind.len() {
            return Err(StoreError::Database(format!(
                "{} of {} jobs were enqueued, but the answers do not line up with the batch",
                rows.len(),
                self.kind.len()
            )));
        }
        let Some(first) = rows.first() else {
            return Ok(Vec::new());
        };
        let at: chrono::DateTime<chrono::Utc> = get(first, "at")?;
        rows.iter()
            .zip(&self.kind)
            .map(|(row, kind)| {
                Ok(Answer::Inserted {
                    id: get(row, "id")?,
                    digest: self.kinds.digests[(*kind - 1) as usize].to_owned(),
                    at,
                })
            })
            .collect()
    }

    fn bind(&self) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
        sqlx::query(ENQUEUE_PINNED)
            .bind(&self.kinds.tenants)
            .bind(&self.kinds.modules)
            .bind(&self.kinds.digests)
            .bind(&self.kinds.queues)
            .bind(&self.kinds.limits)
            .bind(&self.kind)
            .bind(&self.priorities)
            .bind(&self.inputs)
            .bind(&self.run_ats)
            .bind(&self.max_attempts)
            .bind(self.node)
    }
}
