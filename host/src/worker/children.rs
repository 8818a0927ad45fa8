//! The worker's [`Spawner`]: admits a running job's child jobs (caps, names, module,
//! key) and names their ids. The runtime keeps the admitted ones in its report, and they
//! are stored with the attempt's completion in the same commit ([`ChildJob`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::queue::keys::{is_slug, job_key_problem};
use crate::queue::{ChildJob, Job, Limits, NewJob, Store};
use crate::runtime::{Admitted, Child, ChildRequest, Spawner};

/// The server's bounds on child jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildCaps {
    /// Children one attempt may enqueue. Default 1,000.
    pub per_attempt: usize,
    /// How deep children may nest: a job at this depth may not enqueue. Default 16.
    pub depth: u16,
    /// Bytes of one child's input. Default 1 MiB (the API's enqueue bound).
    pub input_bytes: usize,
    /// Bytes of all of one attempt's children's inputs, which the host holds until the
    /// attempt ends. Default 16 MiB.
    pub attempt_bytes: usize,
    /// The server's default `max_unfinished_jobs`, for tenants whose row sets none:
    /// children count against it as enqueued jobs do. Default none.
    pub default_max_unfinished: Option<u64>,
}

impl Default for ChildCaps {
    fn default() -> Self {
        Self {
            per_attempt: 1000,
            depth: 16,
            input_bytes: 1 << 20,
            attempt_bytes: 16 << 20,
            default_max_unfinished: None,
        }
    }
}

/// Ids drawn per round trip at most; the first draw is small, for the common few.
const MAX_ID_BLOCK: usize = 512;

/// The spawner of one attempt of one job.
pub(super) struct JobSpawner {
    store: Arc<dyn Store>,
    tenant: String,
    queue: String,
    depth: u16,
    caps: ChildCaps,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Calls answered from the store (a child made, a key's job found, a module found
    /// missing): what the per-attempt cap counts, so a guest's store reads are bounded.
    asked: usize,
    /// Children made.
    made: u64,
    bytes: usize,
    /// Module name → the latest version's digest and default limits (`None`: no such
    /// module), read once.
    modules: HashMap<String, Option<(String, Limits)>>,
    /// Idempotency keys asked for → the id answered.
    keys: HashMap<String, i64>,
    ids: VecDeque<i64>,
    /// The tenant's `max_unfinished_jobs` and the room under it, read at the first child.
    room: Option<Option<(u64, u64)>>,
}

impl JobSpawner {
    pub(super) fn new(store: Arc<dyn Store>, job: &Job, caps: ChildCaps) -> Self {
        Self {
            store,
            tenant: job.tenant.clone(),
            queue: job.queue.clone(),
            depth: job.depth,
            caps,
            state: Default::default(),
        }
    }

    /// The children the runtime kept (a completed attempt's), as the store takes them.
    pub(super) async fn children(&self, made: Vec<Child>) -> Vec<ChildJob> {
        let state = self.state.lock().await;
        let now = chrono::Utc::now();
        made.into_iter()
            .map(|child| {
                let r = child.request;
                let limits = state
                    .modules
                    .get(&r.module)
                    .and_then(|m| m.as_ref().map(|(_, limits)| limits.clone()))
                    .unwrap_or_default();
                let run_at = r
                    .delay_ms
                    .filter(|ms| *ms > 0)
                    .and_then(|ms| chrono::Duration::try_milliseconds(ms as i64))
                    .and_then(|d| now.checked_add_signed(d));
                ChildJob {
                    id: child.id,
                    depth: self.depth + 1,
                    job: NewJob {
                        tenant: self.tenant.clone(),
                        digest: Some(child.digest),
                        queue: r.queue.unwrap_or_else(|| self.queue.clone()),
                        priority: r.priority.unwrap_or(0) as i16,
                        run_at,
                        limits,
                        idempotency_key: r.idempotency_key,
                        may_run_ahead: false,
                        ..NewJob::new(r.module, r.input)
                    },
                }
            })
            .collect()
    }

    /// The request's own values, checked.
    fn check(&self, r: &ChildRequest, state: &State) -> Result<(), String> {
        if self.depth >= self.caps.depth {
            return Err(format!(
                "this job is at depth {} and child jobs nest at most {} deep",
                self.depth, self.caps.depth
            ));
        }
        if state.asked >= self.caps.per_attempt {
            return Err(format!(
                "an attempt may enqueue at most {} child jobs",
                self.caps.per_attempt
            ));
        }
        if !is_slug(&r.module) {
            return Err(format!(
                "module name `{}` must be 1–63 of a-z, 0-9, `_` and `-`",
                r.module.escape_debug()
            ));
        }
        if let Some(queue) = &r.queue
            && !is_slug(queue)
        {
            return Err(format!(
                "queue `{}` must be 1–63 of a-z, 0-9, `_` and `-`",
                queue.escape_debug()
            ));
        }
        if let Some(p) = r.priority
            && i16::try_from(p).is_err()
        {
            return Err(format!("priority {p} must be between -32768 and 32767"));
        }
        // At most ten years ahead: far enough for any real delay, never past what the
        // stores hold.
        if r.delay_ms.is_some_and(|ms| ms > 10 * 366 * 86_400_000) {
            return Err("`delay-ms` may be at most ten years".into());
        }
        if r.input.len() > self.caps.input_bytes {
            return Err(format!(
                "a child's input may be at most {} bytes",
                self.caps.input_bytes
            ));
        }
        if state.bytes + r.input.len() > self.caps.attempt_bytes {
            return Err(format!(
                "an attempt's child jobs may carry at most {} bytes of input in all",
                self.caps.attempt_bytes
            ));
        }
        if let Some(problem) = r
            .idempotency_key
            .as_deref()
            .and_then(|key| job_key_problem("idempotency-key", key))
        {
            return Err(problem);
        }
        Ok(())
    }
}

/// What a store failure tells the guest: the detail is the operator's (in the log).
fn unavailable(e: crate::queue::StoreError) -> String {
    tracing::warn!(error = %e, "admitting a child job failed");
    "the store was unavailable; try again".into()
}

impl JobSpawner {
    /// The tenant's `max_unfinished_jobs` (its row, else the server's default) and how
    /// many more jobs fit under it, counted once an attempt (bounded by the quota).
    async fn room(&self) -> Result<Option<(u64, u64)>, String> {
        let row = self.store.tenant(&self.tenant).await.map_err(unavailable)?;
        let quota = row
            .and_then(|r| r.quotas.max_unfinished_jobs)
            .or(self.caps.default_max_unfinished);
        let Some(quota) = quota else {
            return Ok(None);
        };
        let used = self.store.unfinished_jobs(&self.tenant, quota).await;
        Ok(Some((
            quota,
            quota.saturating_sub(used.map_err(unavailable)?),
        )))
    }
}

#[async_trait::async_trait]
impl Spawner for JobSpawner {
    async fn admit(&self, r: &ChildRequest) -> Result<Admitted, String> {
        let mut state = self.state.lock().await;
        if let Some(&id) = r.idempotency_key.as_ref().and_then(|k| state.keys.get(k)) {
            return Ok(Admitted::Existing(id));
        }
        self.check(r, &state)?;
        if let Some(key) = &r.idempotency_key {
            let stored = self.store.job_id_by_key(&self.tenant, key).await;
            if let Some(id) = stored.map_err(unavailable)? {
                state.asked += 1;
                state.keys.insert(key.clone(), id);
                return Ok(Admitted::Existing(id));
            }
        }
        if !state.modules.contains_key(&r.module) {
            let module = self.store.get_module(&self.tenant, &r.module).await;
            let module = module.map_err(unavailable)?.map(|m| (m.digest, m.limits));
            if module.is_none() {
                state.asked += 1;
            }
            state.modules.insert(r.module.clone(), module);
        }
        let Some(Some((digest, _))) = state.modules.get(&r.module) else {
            return Err(format!("no module `{}` is uploaded", r.module));
        };
        let digest = digest.clone();
        let room = match state.room {
            Some(room) => room,
            None => *state.room.insert(self.room().await?),
        };
        if let Some((quota, room)) = room
            && state.made >= room
        {
            return Err(format!(
                "the tenant's quota of {quota} unfinished jobs is reached; try again"
            ));
        }
        let id = match state.ids.pop_front() {
            Some(id) => id,
            None => {
                let left = self.caps.per_attempt - state.asked;
                let n = (state.asked + 1).next_power_of_two().clamp(4, MAX_ID_BLOCK);
                let drawn = self.store.draw_ids(n.min(left).max(1)).await;
                state.ids.extend(drawn.map_err(unavailable)?);
                state
                    .ids
                    .pop_front()
                    .ok_or("the store drew no job id; try again")?
            }
        };
        state.asked += 1;
        state.made += 1;
        state.bytes += r.input.len();
        if let Some(key) = &r.idempotency_key {
            state.keys.insert(key.clone(), id);
        }
        Ok(Admitted::New { id, digest })
    }
}
