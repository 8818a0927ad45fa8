//! Tenant quotas enforced by this API node: the effective quotas read at most once a
//! second per tenant, a token bucket per tenant for the enqueue rate, and an estimate of
//! each tenant's unfinished jobs that is exact for this node's own enqueues.
//!
//! The unfinished count is not read per enqueue (a count over a tenant's million rows):
//! it is read, bounded by the quota, at most once per [`FRESH`] per tenant, and this node
//! adds what it admits and stores in between. So one node never lets a tenant past its
//! quota, a refusal may lag finishes by up to [`FRESH`], and N nodes may together
//! overshoot by what the others admitted within one [`FRESH`]. Rates are per node.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::ApiError;
use super::error::OverQuota;
use crate::queue::{Enqueued, NewJob, Quota, Quotas, Store};

/// How long a reading of a tenant's quotas or unfinished jobs is used before it is read
/// again.
pub const FRESH: Duration = Duration::from_secs(1);

/// This node's view of every tenant's quotas and use.
pub struct QuotaState {
    defaults: Quotas,
    quotas: Mutex<HashMap<String, (Instant, Quotas)>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    unfinished: Mutex<HashMap<String, Estimate>>,
}

/// A token bucket: `tokens` as of `at`.
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What this node knows of a tenant's unfinished jobs.
#[derive(Default)]
struct Estimate {
    /// The last reading plus the new jobs this node stored since: on one node, never
    /// less than the truth.
    count: u64,
    /// When `count` was read; `None`: never, or an enqueue's outcome was lost since.
    read_at: Option<Instant>,
    /// A reading is under way (others use the last one meanwhile).
    reading: bool,
    /// Jobs admitted whose enqueue has not answered yet.
    in_flight: u64,
    /// New jobs this node ever stored: what a reading under way may have missed.
    stored: u64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn over(quota: Quota, limit: serde_json::Number, detail: String, retry: Option<u64>) -> ApiError {
    ApiError::QuotaExceeded(Box::new(OverQuota {
        quota,
        limit,
        detail,
        retry_after: retry,
    }))
}

/// The jobs of a batch without a key, and its distinct idempotency and coalesce keys: at
/// most the new jobs it makes.
fn keys_of(jobs: &[NewJob]) -> (u64, Vec<String>, Vec<String>) {
    let (mut unkeyed, mut idempotency, mut coalesce) = (0, BTreeSet::new(), BTreeSet::new());
    for job in jobs {
        match (&job.coalesce, &job.idempotency_key) {
            (Some(c), _) => coalesce.insert(c.key.clone()),
            (None, Some(key)) => idempotency.insert(key.clone()),
            (None, None) => {
                unkeyed += 1;
                true
            }
        };
    }
    (
        unkeyed,
        idempotency.into_iter().collect(),
        coalesce.into_iter().collect(),
    )
}

/// Clears `reading` however the reading ends (also when its caller hangs up).
struct Reading<'a> {
    state: &'a QuotaState,
    tenant: &'a str,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if let Some(e) = lock(&self.state.unfinished).get_mut(self.tenant) {
            e.reading = false;
        }
    }
}

impl QuotaState {
    /// No reading yet; `defaults` stand for every quota a tenant leaves unset.
    pub fn new(defaults: Quotas) -> Self {
        QuotaState {
            defaults,
            quotas: Mutex::default(),
            buckets: Mutex::default(),
            unfinished: Mutex::default(),
        }
    }

    /// The server's defaults.
    pub fn defaults(&self) -> &Quotas {
        &self.defaults
    }

    /// `tenant`'s effective quotas: its row over the defaults, read at most once per
    /// [`FRESH`].
    pub async fn quotas(&self, store: &dyn Store, tenant: &str) -> Result<Quotas, ApiError> {
        if let Some((at, quotas)) = lock(&self.quotas).get(tenant)
            && at.elapsed() < FRESH
        {
            return Ok(*quotas);
        }
        let row = store.tenant(tenant).await?;
        let quotas = row
            .map(|r| r.quotas)
            .unwrap_or_default()
            .over(&self.defaults);
        lock(&self.quotas).insert(tenant.to_owned(), (Instant::now(), quotas));
        Ok(quotas)
    }

    /// Forgets `tenant`'s quotas, so a change made through this node applies at once.
    pub fn forget(&self, tenant: &str) {
        lock(&self.quotas).remove(tenant);
    }

    /// Admits an enqueue of `jobs` by `tenant`: its rate first, then its unfinished jobs.
    /// Report the outcome to the answer ([`Admission::stored`]); dropped without, the
    /// tokens go back and the count is read again.
    pub async fn admit(
        self: &Arc<Self>,
        store: &dyn Store,
        tenant: &str,
        jobs: &[NewJob],
    ) -> Result<Admission, ApiError> {
        let quotas = self.quotas(store, tenant).await?;
        let mut admission = Admission {
            state: self.clone(),
            tenant: tenant.to_owned(),
            tokens: None,
            reserved: 0,
            done: false,
        };
        if let Some((rate, burst)) = quotas.bucket() {
            self.take(tenant, rate, burst, jobs.len() as u64)?;
            admission.tokens = Some((jobs.len() as f64, burst));
        }
        let Some(max) = quotas.max_unfinished_jobs else {
            return Ok(admission);
        };
        let (unkeyed, idempotency, coalesce) = keys_of(jobs);
        let most = unkeyed + (idempotency.len() + coalesce.len()) as u64;
        admission.reserved = match self.reserve(store, tenant, max, most).await {
            Ok(()) => most,
            // At the quota, keys whose enqueue makes no job (a stored idempotency key, a
            // coalesce key with a waiting job) are looked up: such an enqueue passes.
            Err(refused) if unkeyed < most => {
                let found = store
                    .keys_with_jobs(tenant, &idempotency, &coalesce)
                    .await?;
                if found == 0 {
                    return Err(refused);
                }
                let fewer = most.saturating_sub(found);
                self.reserve(store, tenant, max, fewer).await?;
                fewer
            }
            Err(refused) => return Err(refused),
        };
        Ok(admission)
    }

    /// Takes `jobs` tokens from `tenant`'s bucket, or says when they will be there.
    fn take(&self, tenant: &str, rate: f64, burst: f64, jobs: u64) -> Result<(), ApiError> {
        let wanted = jobs as f64;
        let number = |v: f64| serde_json::Number::from_f64(v).unwrap_or_else(|| 0.into());
        if wanted > burst {
            return Err(over(
                Quota::EnqueueBurst,
                (burst as u64).into(),
                format!(
                    "{jobs} jobs at once are more than tenant `{tenant}`'s `enqueue_burst` of \
                     {burst}; send batches of at most {burst} jobs"
                ),
                None,
            ));
        }
        let now = Instant::now();
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= wanted {
            bucket.tokens -= wanted;
            return Ok(());
        }
        let wait = ((wanted - bucket.tokens) / rate).ceil().max(1.0) as u64;
        Err(over(
            Quota::EnqueueRate,
            number(rate),
            format!(
                "tenant `{tenant}` may enqueue {rate} jobs per second (`enqueue_rate`), in \
                 bursts of up to {burst}; retry after {wait} s"
            ),
            Some(wait),
        ))
    }

    /// Reserves room for `jobs` more unfinished jobs of `tenant` under `max`.
    async fn reserve(
        &self,
        store: &dyn Store,
        tenant: &str,
        max: u64,
        jobs: u64,
    ) -> Result<(), ApiError> {
        let read_from = {
            let mut all = lock(&self.unfinished);
            let e = all.entry(tenant.to_owned()).or_default();
            let stale = e.read_at.is_none_or(|at| at.elapsed() >= FRESH);
            // A stale reading serves while another caller reads; none at all does not.
            (e.read_at.is_none() || (stale && !e.reading)).then(|| {
                e.reading = true;
                e.stored
            })
        };
        if let Some(stored_before) = read_from {
            let started = Instant::now();
            let _reading = Reading {
                state: self,
                tenant,
            };
            let count = store.unfinished_jobs(tenant, max.saturating_add(1)).await?;
            let mut all = lock(&self.unfinished);
            let e = all.entry(tenant.to_owned()).or_default();
            // Jobs stored while the count ran may be in it or not: counted again, to err
            // on the side of the quota.
            e.count = count + (e.stored - stored_before);
            e.read_at = Some(started);
        }
        let mut all = lock(&self.unfinished);
        let e = all.entry(tenant.to_owned()).or_default();
        let has = e.count + e.in_flight;
        if has.saturating_add(jobs) > max {
            return Err(over(
                Quota::MaxUnfinishedJobs,
                max.into(),
                format!(
                    "tenant `{tenant}` has {has} unfinished jobs and its `max_unfinished_jobs` is \
                     {max}: {jobs} more would exceed it; wait for jobs to finish (or cancel some)"
                ),
                Some(FRESH.as_secs().max(1)),
            ));
        }
        e.in_flight += jobs;
        Ok(())
    }

    /// Refuses an upload of `bytes` that would take `tenant`'s stored modules past its
    /// `max_module_bytes` (bytes it already stores cost nothing).
    pub async fn check_module(
        &self,
        store: &dyn Store,
        tenant: &str,
        bytes: &[u8],
    ) -> Result<(), ApiError> {
        let Some(max) = self.quotas(store, tenant).await?.max_module_bytes else {
            return Ok(());
        };
        let digest = hex::encode(Sha256::digest(bytes));
        let (used, stored) = store.module_bytes_used(tenant, &digest).await?;
        let adds = if stored { 0 } else { bytes.len() as u64 };
        if used.saturating_add(adds) > max {
            return Err(over(
                Quota::MaxModuleBytes,
                max.into(),
                format!(
                    "tenant `{tenant}` stores {used} bytes of modules and its `max_module_bytes` \
                     is {max}: this {adds}-byte module would exceed it; delete modules it no \
                     longer needs"
                ),
                None,
            ));
        }
        Ok(())
    }

    /// Refuses a new schedule (not a replaced one) past `tenant`'s `max_schedules`.
    pub async fn check_schedule(
        &self,
        store: &dyn Store,
        tenant: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let Some(max) = self.quotas(store, tenant).await?.max_schedules else {
            return Ok(());
        };
        let existing = store.schedules(tenant, None).await?;
        let has = existing.len() as u64;
        if !existing.iter().any(|s| s.spec.name == name) && has >= max {
            return Err(over(
                Quota::MaxSchedules,
                max.into(),
                format!(
                    "tenant `{tenant}` has {has} schedules and its `max_schedules` is {max}; \
                     delete one before creating `{name}`"
                ),
                None,
            ));
        }
        Ok(())
    }
}

/// An enqueue let through by [`QuotaState::admit`], until it answers.
pub struct Admission {
    state: Arc<QuotaState>,
    tenant: String,
    /// Tokens taken and the bucket's size.
    tokens: Option<(f64, f64)>,
    /// Unfinished jobs reserved.
    reserved: u64,
    done: bool,
}

impl Admission {
    /// The enqueue stored `enqueued`: its new unfinished jobs now count (a duplicate or a
    /// coalesced enqueue made none, a job run ahead may be finished already).
    pub fn stored(mut self, enqueued: &[Enqueued]) {
        self.done = true;
        if self.reserved == 0 {
            return;
        }
        let new = enqueued
            .iter()
            .filter(|e| !e.duplicate && !e.coalesced && !e.job.state.is_finished())
            .count() as u64;
        let mut all = lock(&self.state.unfinished);
        let e = all.entry(self.tenant.clone()).or_default();
        e.in_flight = e.in_flight.saturating_sub(self.reserved);
        e.count += new;
        e.stored += new;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Refused, failed or cut off: maybe stored, maybe not; the count is read again.
        if self.reserved > 0 {
            let mut all = lock(&self.state.unfinished);
            if let Some(e) = all.get_mut(&self.tenant) {
                e.in_flight = e.in_flight.saturating_sub(self.reserved);
                e.read_at = None;
            }
        }
        if let Some((tokens, burst)) = self.tokens
            && let Some(bucket) = lock(&self.state.buckets).get_mut(&self.tenant)
        {
            bucket.tokens = (bucket.tokens + tokens).min(burst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_burst_and_says_when_to_retry() {
        let state = QuotaState::new(Quotas::default());
        state.take("t", 1.0, 2.0, 2).unwrap();
        let Err(ApiError::QuotaExceeded(over)) = state.take("t", 1.0, 2.0, 1) else {
            panic!("the bucket is empty");
        };
        assert_eq!(
            (over.quota, over.retry_after),
            (Quota::EnqueueRate, Some(1))
        );
        let Err(ApiError::QuotaExceeded(over)) = state.take("t", 1.0, 2.0, 3) else {
            panic!("more than the burst never fits");
        };
        assert_eq!((over.quota, over.retry_after), (Quota::EnqueueBurst, None));
        state.take("other", 1.0, 2.0, 1).unwrap();
    }

    #[test]
    fn a_batch_makes_at_most_its_unkeyed_jobs_and_distinct_keys() {
        let keyed = |key: &str| NewJob {
            idempotency_key: Some(key.to_owned()),
            ..NewJob::new("m", b"")
        };
        let debounced = |key: &str| NewJob {
            coalesce: Some(crate::queue::Coalesce {
                key: key.to_owned(),
                window: Duration::from_secs(1),
                max: None,
            }),
            ..NewJob::new("m", b"")
        };
        let jobs = [
            NewJob::new("m", b""),
            keyed("a"),
            keyed("a"),
            debounced("c"),
            debounced("c"),
            NewJob::new("m", b""),
        ];
        let (unkeyed, idempotency, coalesce) = keys_of(&jobs);
        assert_eq!(
            (unkeyed, idempotency, coalesce),
            (2, vec!["a".into()], vec!["c".into()])
        );
    }
}
