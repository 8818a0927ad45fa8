//! The scheduler loop: fire what is due, then sleep until the next tick or a change.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::{CronExpr, decide, tick_key};
use crate::queue::{NewJob, Schedule, ScheduleAdvance, Store, StoreError, StoreEvent};

/// Due schedules handled per store read.
const BATCH: u32 = 100;
/// With nothing due, the next tick is read again at least this often (a change on a node
/// whose notification was lost is seen by then).
const IDLE_RECHECK: Duration = Duration::from_secs(300);
/// After a store error, the loop tries again this much later.
const RETRY: Duration = Duration::from_secs(1);

/// Enqueues each schedule's job at its ticks. Run one per node; they agree by the store.
pub struct Scheduler {
    store: Arc<dyn Store>,
}

impl Scheduler {
    /// A scheduler over `store`; nothing runs until [`Scheduler::run`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Runs until `stop` becomes true. Costs one read per tick and per schedule change,
    /// and one every [`IDLE_RECHECK`] when no schedule exists.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut events = self.store.subscribe();
        loop {
            let wait = match self.fire_due().await {
                Ok(Some(next)) => (next - Utc::now()).to_std().unwrap_or_default(),
                Ok(None) => IDLE_RECHECK,
                Err(e) => {
                    tracing::warn!(error = %e, "the scheduler cannot read its schedules; retrying");
                    RETRY
                }
            };
            let deadline = tokio::time::Instant::now() + wait.min(IDLE_RECHECK);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => break,
                    event = events.recv() => match event {
                        Ok(StoreEvent::SchedulesChanged | StoreEvent::Reconnected)
                        | Err(RecvError::Lagged(_)) => break,
                        Ok(_) => {}
                        Err(RecvError::Closed) => return,
                    },
                    _ = stopped(&mut stop) => return,
                }
            }
        }
    }

    /// Fires every due schedule; answers the next tick to wake for.
    async fn fire_due(&self) -> Result<Option<chrono::DateTime<Utc>>, StoreError> {
        loop {
            let now = Utc::now();
            let due = self.store.due_schedules(now, BATCH).await?;
            let full = due.len() == BATCH as usize;
            for schedule in &due {
                self.fire(schedule, now).await?;
            }
            if !full {
                return self.store.next_schedule_at().await;
            }
        }
    }

    /// Handles one due tick. Only a store that cannot be reached is an error (the tick
    /// stays due); anything else about the job is recorded on the schedule.
    async fn fire(&self, s: &Schedule, now: chrono::DateTime<Utc>) -> Result<(), StoreError> {
        let Some(tick) = s.spec.next_run_at else {
            return Ok(());
        };
        let (decision, cron_error) = match CronExpr::parse(&s.spec.cron, &s.spec.timezone) {
            Ok(cron) => (decide(&cron, s.spec.catch_up, tick, now), None),
            // Checked when put; only a changed parser could refuse it now. It stops.
            Err(e) => (
                super::Decision {
                    enqueue: false,
                    next: None,
                },
                Some(e.to_string()),
            ),
        };
        let (job_id, error) = if decision.enqueue {
            match self.enqueue(s, tick).await {
                Ok(id) => (Some(id), None),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => (None, Some(format!("enqueueing the tick's job failed: {e}"))),
            }
        } else {
            (None, cron_error)
        };
        if let Some(error) = &error {
            tracing::warn!(tenant = %s.spec.tenant, schedule = %s.spec.name, %error, "schedule tick made no job");
        }
        self.store
            .advance_schedule(ScheduleAdvance {
                tenant: s.spec.tenant.clone(),
                name: s.spec.name.clone(),
                revision: s.revision,
                tick,
                next_run_at: decision.next,
                job_id,
                error: error.map(crate::text::cap_message),
            })
            .await?;
        Ok(())
    }

    /// The tick's job, made once whichever node gets here first (the key is the tick's).
    async fn enqueue(&self, s: &Schedule, tick: chrono::DateTime<Utc>) -> Result<i64, StoreError> {
        let spec = &s.spec;
        let module = self
            .store
            .get_module(&spec.tenant, &spec.module)
            .await?
            .ok_or_else(|| StoreError::ModuleNotFound {
                module: spec.module.clone(),
            })?;
        let job = NewJob {
            tenant: spec.tenant.clone(),
            module: spec.module.clone(),
            digest: Some(module.digest),
            queue: spec.queue.clone(),
            priority: spec.priority,
            input: spec.input.clone(),
            run_at: None,
            max_attempts: spec.max_attempts,
            limits: spec.limits.over(&module.limits),
            idempotency_key: Some(tick_key(&spec.name, tick)),
            // Keyed, so stored before it runs anyway.
            may_run_ahead: true,
            // A tick is one job by its key; a schedule takes no coalesce key.
            coalesce: None,
            depends_on: Vec::new(),
        };
        let enqueued = self.store.enqueue(vec![job]).await?;
        enqueued
            .first()
            .map(|e| e.job.id)
            .ok_or_else(|| StoreError::Database("the store answered no job".into()))
    }
}

/// Resolves once `stop` is true; never if its sender is dropped untriggered.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}
