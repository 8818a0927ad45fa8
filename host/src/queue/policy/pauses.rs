//! Paused queues: what this process knows of them, so that it hands no job of a paused
//! queue straight to an idle worker.
//!
//! Claims never rest on this knowledge: a driver's claim looks up each tenant's pause
//! in the statement. The set is read from the store on first use and again after any
//! change this process makes or hears of (another node's notification, a reconnect, a
//! lag).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::Queue;
use crate::queue::driver::Driver;
use crate::queue::{JobState, QueueInfo, StoreError, StoreEvent};

/// This process's view of which queues have a pause (of any tenant).
pub(super) struct Pauses {
    /// Bumped on every change made or heard of; the view is current while it matches.
    epoch: AtomicU64,
    /// The epoch the set was read at, and the queues with a pause.
    known: Mutex<(u64, Arc<HashSet<String>>)>,
    /// One reader of the store at a time.
    reading: tokio::sync::Mutex<()>,
}

impl Default for Pauses {
    fn default() -> Self {
        Pauses {
            epoch: AtomicU64::new(1),
            known: Mutex::new((0, Arc::default())),
            reading: tokio::sync::Mutex::new(()),
        }
    }
}

impl Pauses {
    /// The view is out of date: the next question reads the store again.
    pub(super) fn changed(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether `queue` has a pause, from the view if it is current.
    fn current(&self, queue: &str) -> Option<bool> {
        let known = self.known.lock().expect("pauses lock");
        (known.0 == self.epoch.load(Ordering::Acquire)).then(|| known.1.contains(queue))
    }

    /// Whether any tenant paused `queue`, reading the store if the view is out of date.
    pub(super) async fn any<D: Driver>(&self, driver: &D, queue: &str) -> Result<bool, StoreError> {
        if let Some(paused) = self.current(queue) {
            return Ok(paused);
        }
        let _reading = self.reading.lock().await;
        if let Some(paused) = self.current(queue) {
            return Ok(paused);
        }
        // Read at this epoch: a change during the read bumps it and the next call reads again.
        let epoch = self.epoch.load(Ordering::Acquire);
        let set: HashSet<String> = driver.paused_queues(None).await?.into_iter().collect();
        let paused = set.contains(queue);
        *self.known.lock().expect("pauses lock") = (epoch, Arc::new(set));
        Ok(paused)
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
    pauses: Arc<Pauses>,
    mut events: broadcast::Receiver<StoreEvent>,
    wake: broadcast::WeakSender<StoreEvent>,
) {
    loop {
        match events.recv().await {
            Ok(StoreEvent::QueuePauseChanged { queue }) => {
                pauses.changed();
                let Some(wake) = wake.upgrade() else { return };
                let _ = wake.send(StoreEvent::JobsAvailable { queue });
            }
            Ok(StoreEvent::Reconnected) | Err(broadcast::error::RecvError::Lagged(_)) => {
                pauses.changed()
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
        self.inner.pauses.changed();
        let changed = changed?;
        if changed && !paused {
            self.wake_queues([queue]);
        }
        Ok(changed)
    }

    /// Whether any tenant paused `queue`, as this process knows: no job of it is handed
    /// over while one did.
    pub(super) async fn queue_has_pause(&self, queue: &str) -> Result<bool, StoreError> {
        self.inner.pauses.any(&self.inner.driver, queue).await
    }

    /// The queues of `tenant`: unfinished counts and pauses, by name.
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
