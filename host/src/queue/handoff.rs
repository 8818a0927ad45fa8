//! Hand-off: a job enqueued in a process whose worker is idle on the job's queue goes
//! straight to that worker, with no claim.
//!
//! The normal path of a job is three statements on three trips to the database: the
//! enqueue, the claim (after the worker has heard of the job), the finish. A worker loop
//! registers itself here as a taker and, while it has nothing else to do, offers its free
//! slots ([`TakerHandle::offer`]). The queue core (`policy/handed.rs`) enqueueing a lone
//! job without a key and without a run time [reserves](Handoff::reserve_for) one and
//! then [delivers](Reservation::deliver) the job: to be run ahead of its insert and
//! stored with the attempt's report (see [`RunAhead`]), or, for a job that may not run
//! ahead, after it was stored `running` (attempt 1, leased to the taker's worker).
//!
//! This file knows only takers and slots, not the store: the core uses it, never the
//! other way round.
//!
//! Invariants:
//! - a taker is handed at most as many jobs as it offered slots: a reservation counts
//!   against the offer from when it is taken until the loop has received its job (or it
//!   is dropped unused), so offers made meanwhile do not count that slot again;
//! - a taker offers slots only while it has nothing claimed waiting and no claim in flight
//!   (it believes its queue empty): a job never skips ahead of waiting jobs this process
//!   knows of;
//! - a job stored running for a taker is delivered to it after its commit, or given back
//!   (released to `available`) if the taker has gone away meanwhile; a delivered job is
//!   held (leased, heartbeated, given back on shutdown) like a claimed one.
//!
//! If the insert of a job stored before it is handed over has an unknown outcome (it
//! failed after its commit), the job may be running for a worker that never got it: its
//! lease expires and the rescuer retries it, as after a worker crash. A job run ahead is
//! the worker's already then, and it holds it (see [`RunAhead`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Finish, Job, NewJob};

/// The takers of one process, by queue. Shared by a store and the workers over it.
#[derive(Default)]
pub struct Handoff {
    takers: Mutex<HashMap<String, Vec<Arc<Taker>>>>,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff").finish_non_exhaustive()
    }
}

/// A worker loop that takes jobs handed to it.
struct Taker {
    worker: String,
    lease: Duration,
    slots: Mutex<Slots>,
    tx: mpsc::UnboundedSender<Handed>,
}

/// A taker's slots: it may be handed `offered - pending` more jobs.
#[derive(Default)]
struct Slots {
    /// Free slots, as the loop last counted them.
    offered: usize,
    /// Reserved, and not yet received by the loop (nor dropped unused).
    pending: usize,
}

impl Taker {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().expect("slots lock")
    }
}

/// A job handed to a worker: stored already, running for it (`ahead` is `None`), or not
/// stored yet and to be run ahead of its insert.
pub struct Handed {
    /// The job, running (attempt 1) for the taker's worker.
    pub job: Job,
    /// Set when the job is run before it is stored.
    pub ahead: Option<RunAhead>,
}

/// The two ways back from a job run ahead of its insert. The worker sends its report on
/// `report`; if the enqueuer stopped waiting for it (`report` closed), the enqueuer has
/// written the job running instead and says on `committed` whether it may be stored
/// (committed, or the outcome is unknown). Only then is the job the worker's: it is
/// leased and heartbeated from then on (a heartbeat finds a job never stored lost and
/// interrupts it), and its report goes to the store as any claimed job's, which applies
/// only to a stored job. If it is not stored (the database refused it, or the enqueue was
/// dropped by its caller), the attempt is interrupted and dropped: the job never existed,
/// and a guest can reach nothing outside its sandbox.
pub struct RunAhead {
    /// The attempt's report, to be stored with the job by the enqueuer.
    pub report: oneshot::Sender<Finish>,
    /// Whether the job, written running, is (or may be) stored.
    pub committed: oneshot::Receiver<bool>,
}

/// A registered taker. Dropping it unregisters the taker.
pub struct TakerHandle {
    taker: Arc<Taker>,
    queue: String,
    handoff: Weak<Handoff>,
}

/// One slot of a taker, reserved for one job about to be enqueued. Dropped undelivered,
/// the slot is free again.
pub struct Reservation {
    taker: Arc<Taker>,
    delivered: bool,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.delivered {
            let mut slots = self.taker.slots();
            slots.pending = slots.pending.saturating_sub(1);
        }
    }
}

impl Handoff {
    /// Registers a worker loop of `queue` whose jobs are leased to `worker` for `lease`.
    /// It offers no slot until [`TakerHandle::offer`]; handed jobs arrive on the receiver.
    pub fn register(
        self: &Arc<Self>,
        queue: &str,
        worker: &str,
        lease: Duration,
    ) -> (TakerHandle, mpsc::UnboundedReceiver<Handed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let taker = Arc::new(Taker {
            worker: worker.to_owned(),
            lease,
            slots: Mutex::default(),
            tx,
        });
        self.takers
            .lock()
            .expect("handoff lock")
            .entry(queue.to_owned())
            .or_default()
            .push(taker.clone());
        let handle = TakerHandle {
            taker,
            queue: queue.to_owned(),
            handoff: Arc::downgrade(self),
        };
        (handle, rx)
    }

    /// A slot for `jobs` if they are one job to run now, without an idempotency key (a
    /// key's job may exist already), a coalesce key (it waits its window) or dependencies
    /// (it waits for them), and a taker of its queue offers a slot.
    pub fn reserve_for(&self, jobs: &[NewJob]) -> Option<Reservation> {
        match jobs {
            [job]
                if job.idempotency_key.is_none()
                    && job.run_at.is_none()
                    && job.coalesce.is_none()
                    && job.depends_on.is_empty() =>
            {
                self.reserve(&job.queue)
            }
            _ => None,
        }
    }

    /// A slot of a taker of `queue` that offers one, if any.
    pub fn reserve(&self, queue: &str) -> Option<Reservation> {
        let takers = self.takers.lock().expect("handoff lock");
        takers.get(queue)?.iter().find_map(|taker| {
            let mut slots = taker.slots();
            (slots.offered > slots.pending).then(|| {
                slots.pending += 1;
                Reservation {
                    taker: taker.clone(),
                    delivered: false,
                }
            })
        })
    }
}

impl TakerHandle {
    /// Offers `free` slots (0: none) until the next call: the loop's free slots, not
    /// counting jobs reserved for it that it has not received yet.
    pub fn offer(&self, free: usize) {
        self.taker.slots().offered = free;
    }

    /// The loop has received a handed job (which now takes one of its slots).
    pub fn received(&self) {
        let mut slots = self.taker.slots();
        slots.pending = slots.pending.saturating_sub(1);
        slots.offered = slots.offered.saturating_sub(1);
    }
}

impl Drop for TakerHandle {
    fn drop(&mut self) {
        self.taker.slots().offered = 0;
        let Some(handoff) = self.handoff.upgrade() else {
            return;
        };
        let mut takers = handoff.takers.lock().expect("handoff lock");
        if let Some(list) = takers.get_mut(&self.queue) {
            list.retain(|t| !Arc::ptr_eq(t, &self.taker));
            if list.is_empty() {
                takers.remove(&self.queue);
            }
        }
    }
}

impl Reservation {
    /// The worker the job is leased to.
    pub fn worker(&self) -> &str {
        &self.taker.worker
    }

    /// How long the job's first lease lasts.
    pub fn lease(&self) -> Duration {
        self.taker.lease
    }

    /// Gives the job to the taker; `Err` (the job back) if it has gone away.
    pub fn deliver(mut self, handed: Handed) -> Result<(), Box<Handed>> {
        self.taker.tx.send(handed).map_err(|e| Box::new(e.0))?;
        self.delivered = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: i64) -> Job {
        let now = chrono::Utc::now();
        let new = NewJob::new("m", b"{}".to_vec());
        Job::just_enqueued(
            new,
            id,
            "d".into(),
            super::super::JobState::Running,
            now,
            now,
        )
    }

    #[test]
    fn a_taker_gets_only_the_slots_it_offers() {
        let handoff = Arc::new(Handoff::default());
        assert!(handoff.reserve("q").is_none(), "no taker");
        let (taker, _rx) = handoff.register("q", "w1", Duration::from_secs(30));
        assert!(
            handoff.reserve("q").is_none(),
            "registered, nothing offered"
        );
        taker.offer(2);
        let a = handoff.reserve("q").expect("first slot");
        assert_eq!(a.worker(), "w1");
        assert_eq!(a.lease(), Duration::from_secs(30));
        let b = handoff.reserve("q").expect("second slot");
        assert!(handoff.reserve("q").is_none(), "two offered, two taken");
        assert!(handoff.reserve("other").is_none(), "another queue");
        // The loop counts its free slots again before either job arrives: the two in
        // flight still count against them.
        taker.offer(2);
        assert!(
            handoff.reserve("q").is_none(),
            "both slots are on their way"
        );
        // One dropped unused: its slot is free again.
        drop(b);
        let c = handoff.reserve("q").expect("the freed slot");
        // One received: it takes a slot, not two.
        drop(a);
        drop(c);
        let d = handoff.reserve("q").expect("a slot");
        assert!(
            d.deliver(Handed {
                job: running(1),
                ahead: None
            })
            .is_ok()
        );
        let e = handoff.reserve("q").expect("one delivered, one left");
        assert!(handoff.reserve("q").is_none());
        // The loop receives the delivered job: its slot is taken, the other still pending.
        taker.received();
        assert!(
            handoff.reserve("q").is_none(),
            "one slot left, and it is reserved"
        );
        drop(e);
        assert!(handoff.reserve("q").is_some(), "freed");
        drop(taker);
        assert!(handoff.reserve("q").is_none(), "unregistered");
        assert!(handoff.takers.lock().unwrap().is_empty());
    }

    #[test]
    fn delivery_fails_once_the_taker_is_gone() {
        let handoff = Arc::new(Handoff::default());
        let (taker, rx) = handoff.register("q", "w1", Duration::from_secs(30));
        taker.offer(1);
        let slot = handoff.reserve("q").unwrap();
        drop(rx);
        let handed = Handed {
            job: running(7),
            ahead: None,
        };
        assert_eq!(slot.deliver(handed).unwrap_err().job.id, 7);
    }
}
