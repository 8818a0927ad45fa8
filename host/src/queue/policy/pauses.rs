//! Paused queues and running-job caps: what this process knows of them, so that it hands
//! no job of a paused queue, or of a capped tenant or queue, straight to an idle worker
//! (a job run before it is stored would run past the claim's count).
//!
//! Claims never rest on this knowledge: a driver's claim looks up each tenant's pause
//! and caps in the statement. The view is read from the store on first use, again after
//! any change this process makes or hears of (another node's pause or limit
//! notification, a reconnect, a lag), and at least once a second (another node's tenant
//! quotas send no notification).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::Queue;
use crate::queue::driver::Driver;
use crate::queue::{JobState, QueueInfo, StoreError, StoreEvent};

/// How long a view is trusted without a change heard of.
const VIEW_AGE: Duration = Duration::from_secs(1);

/// What holds a job back from the hand-off, as read from the store.
#[derive(Debug, Default)]
struct View {
    /// Queues with a pause (of any tenant).
    paused: HashSet<String>,
    /// Tenants whose row sets `max_running`.
    capped: HashSet<String>,
    /// (tenant, queue) pairs with a limit.
    limited: HashSet<(String, String)>,
}

/// This process's view of pauses and caps.
pub(super) struct Held {
    /// Bumped on every change made or heard of; the view is current while it matches.
    epoch: AtomicU64,
    /// The epoch and time the view was read at, and the view.
    known: Mutex<(u64, Instant, Arc<View>)>,
    /// One reader of the store at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Default for Held {
    fn default() -> Self {
        Held {
            epoch: AtomicU64::new(1),
            known: Mutex::new((0, Instant::now(), Arc::default())),
            reading: tokio::sync::Mutex::new(()),
        }
    }
}

impl Held {
    /// The view is out of date: the next question reads the store again.
    pub(super) fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// The view, if it is current.
    fn current(&self) -> Option<Arc<View>> {
        let known = self.known.lock().expect("held lock");
        (known.0 == self.epoch.load(Ordering::Acquire) && known.1.elapsed() < VIEW_AGE)
            .then(|| known.2.clone())
    }

    /// Whether the view last read names a cap, however old: a hint for wake-ups only.
    pub(super) fn may_cap(&self) -> bool {
        let known = self.known.lock().expect("held lock");
        !known.2.capped.is_empty() || !known.2.limited.is_empty()
    }

    /// Whether the view is out of date.
    fn stale(&self) -> bool {
        self.current().is_none()
    }

    /// Whether a job of `tenant` in `queue` must wait for a claim: its queue has a pause
    /// (of any tenant), or its tenant or queue a cap. Reads the store if out of date.
    pub(super) async fn holds_back<D: Driver>(
        &self,
        driver: &D,
        tenant: &str,
        queue: &str,
    ) -> Result<bool, StoreError> {
        let view = match self.current() {
            Some(view) => view,
            None => self.read(driver).await?,
        };
        Ok(view.paused.contains(queue)
            || view.capped.contains(tenant)
            || view
                .limited
                .contains(&(tenant.to_owned(), queue.to_owned())))
    }

    async fn read<D: Driver>(&self, driver: &D) -> Result<Arc<View>, StoreError> {
        let _reading = self.reading.lock().await;
        if let Some(view) = self.current() {
            return Ok(view);
        }
        // Read at this epoch: a change during the read bumps it and the next call reads again.
        let epoch = self.epoch.load(Ordering::Acquire);
        let view = Arc::new(View {
            paused: driver.paused_queues(None).await?.into_iter().collect(),
            capped: driver.capped_tenants().await?.into_iter().collect(),
            limited: (driver.queue_limits(None).await?.into_iter())
                .map(|l| (l.tenant, l.queue))
                .collect(),
        });
        *self.known.lock().expect("held lock") = (epoch, Instant::now(), view.clone());
        Ok(view)
    }
}

/// The entry of queue `name`, made empty if new.
fn entry<'a>(queues: &'a mut BTreeMap<String, QueueInfo>, name: &str) -> &'a mut QueueInfo {
    queues.entry(name.to_owned()).or_insert_with(|| QueueInfo {
        name: name.to_owned(),
        ..QueueInfo::default()
    })
}

/// Marks the view out of date on every event that may mean a change, then wakes the
/// queue's workers so they claim again with the view read anew. Ends with the channel.
pub(super) async fn watch(
    held: Arc<Held>,
    mut events: broadcast::Receiver<StoreEvent>,
    wake: broadcast::WeakSender<StoreEvent>,
) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::QueuePauseChanged { queue }) => {
                held.changed();
                let Some(wake) = wake.upgrade() else { return };
                let _ = wake.send(StoreEvent::JobsAvailable { queue });
            }
            Ok(StoreEvent::Reconnected) | Err(broadcast::error::RecvError::Lagged(_)) => {
                held.changed()
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl<D: Driver> Queue<D> {
    /// Pauses or resumes; this process's view changes at once, and a resumed queue's
    /// workers here are woken (other nodes hear the driver's notification).
    pub(super) async fn set_paused(
        &self,
        tenant: &str,
        queue: &str,
        paused: bool,
    ) -> Result<bool, StoreError> {
        let changed = self.inner.driver.set_paused(tenant, queue, paused).await;
        // Even after an error: the statement may have committed.
        self.inner.held.changed();
        let changed = changed?;
        if changed && !paused {
            self.wake_queues([queue]);
        }
        Ok(changed)
    }

    /// Sets or removes `tenant`'s limit of running jobs in `queue`; this process's view
    /// changes at once and the queue's workers here are woken (a raised limit leaves room).
    pub(super) async fn set_limit(
        &self,
        tenant: &str,
        queue: &str,
        max_running: Option<u64>,
    ) -> Result<(), StoreError> {
        crate::queue::keys::validate_tenant(tenant)?;
        if !crate::queue::keys::is_slug(queue) {
            return Err(StoreError::Invalid(format!(
                "`{queue}` is not a queue name"
            )));
        }
        if max_running.is_some_and(|n| i64::try_from(n).is_err()) {
            return Err(StoreError::Invalid(format!(
                "`max_running` is at most {}",
                i64::MAX
            )));
        }
        let set = self
            .inner
            .driver
            .set_queue_limit(tenant, queue, max_running)
            .await;
        self.inner.held.changed();
        set?;
        self.wake_queues([queue]);
        Ok(())
    }

    /// The server's default `max_running` this process's claims apply.
    pub(super) fn default_max_running(&self) -> Option<u64> {
        match self.inner.default_max_running.load(Ordering::Acquire) {
            0 => None,
            n => Some(n - 1),
        }
    }

    /// Whether a running-job cap may apply to some job, without reading the store: a
    /// default, or a cap in the view last read.
    pub(super) fn may_cap(&self) -> bool {
        self.default_max_running().is_some() || self.inner.held.may_cap()
    }

    /// After a claim that came back short (perhaps capped), reads the view again in the
    /// background if it is out of date, so that a process that never hands a job over
    /// (`wasmq worker`) learns of caps too and wakes its claimers as jobs finish.
    pub(super) fn refresh_held(&self) {
        if !self.inner.held.stale() {
            return;
        }
        let queue = self.clone();
        tokio::spawn(async move {
            let (held, driver) = (&queue.inner.held, &queue.inner.driver);
            if let Err(e) = held.read(driver).await {
                tracing::debug!(error = %e, "reading pauses and caps failed");
            }
        });
    }

    /// Whether a job of `tenant` in `queue` must wait for a claim, as this process
    /// knows: a pause, a cap of its tenant (its own or the server's default) or of its
    /// queue. No job of them is handed over.
    pub(super) async fn held_back(&self, tenant: &str, queue: &str) -> Result<bool, StoreError> {
        if self.default_max_running().is_some() {
            return Ok(true);
        }
        self.inner
            .held
            .holds_back(&self.inner.driver, tenant, queue)
            .await
    }

    /// The queues of `tenant`: unfinished counts, pauses and limits, by name.
    pub(super) async fn queue_infos(&self, tenant: &str) -> Result<Vec<QueueInfo>, StoreError> {
        let driver = &self.inner.driver;
        let mut queues: BTreeMap<String, QueueInfo> = BTreeMap::new();
        for count in driver.count_unfinished(tenant).await? {
            let q = entry(&mut queues, &count.queue);
            match count.state {
                JobState::Waiting => q.waiting = count.count,
                JobState::Scheduled => q.scheduled = count.count,
                JobState::Available => q.available = count.count,
                JobState::Retryable => q.retryable = count.count,
                JobState::Running => q.running = count.count,
                _ => {}
            }
        }
        for name in driver.paused_queues(Some(tenant)).await? {
            entry(&mut queues, &name).paused = true;
        }
        for limit in driver.queue_limits(Some(tenant)).await? {
            entry(&mut queues, &limit.queue).max_running = Some(limit.max_running);
        }
        Ok(queues.into_values().collect())
    }

    /// See [`crate::queue::Store::has_work`].
    pub(super) async fn work_left(
        &self,
        queues: &[String],
        horizon: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        if queues.is_empty() {
            return Ok(false);
        }
        self.inner.driver.has_work(queues, horizon).await
    }
}
