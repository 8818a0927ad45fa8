//! This process's wake-ups: what the core sends its subscribers after a commit, and what
//! it sends when it cannot know whether a statement committed.

use tokio::sync::broadcast;

use crate::queue::StoreEvent;

/// Events sent to this process's subscribers when dropped, unless disarmed: for a
/// statement whose outcome this process may not have seen (an error after its commit, a
/// dropped future). A needless event costs a subscriber a read; a missed one, a poll
/// interval.
pub(super) struct EventsOnDrop<'a> {
    events: &'a broadcast::Sender<StoreEvent>,
    pending: Vec<StoreEvent>,
}

impl<'a> EventsOnDrop<'a> {
    pub(super) fn new(events: &'a broadcast::Sender<StoreEvent>, pending: Vec<StoreEvent>) -> Self {
        EventsOnDrop { events, pending }
    }

    /// The outcome is known and its events (if any) are sent.
    pub(super) fn disarm(mut self) {
        self.pending.clear();
    }
}

impl Drop for EventsOnDrop<'_> {
    fn drop(&mut self) {
        for event in self.pending.drain(..) {
            let _ = self.events.send(event);
        }
    }
}

/// The workers whose jobs a rescue took back, for the operator's log: the tenants'
/// messages name none ([`crate::queue::LOST_MESSAGE`]).
#[derive(Default)]
pub(super) struct LostWorkers(std::collections::BTreeMap<String, Vec<i64>>);

impl LostWorkers {
    /// Job `id` was held by `worker`.
    pub(super) fn add(&mut self, worker: Option<String>, id: i64) {
        self.0
            .entry(worker.unwrap_or_else(|| "?".into()))
            .or_default()
            .push(id);
    }

    /// One line per worker, with (some of) its jobs.
    pub(super) fn log(&self) {
        for (worker, ids) in &self.0 {
            tracing::warn!(
                worker = %worker,
                jobs = ids.len(),
                ids = ?&ids[..ids.len().min(20)],
                "took back the jobs of a worker that stopped renewing its leases"
            );
        }
    }
}
