//! Hand-off: a job enqueued in a process whose worker is idle on the job's queue goes
//! straight to that worker.
//!
//! The normal path of a job is three commits on three trips to the database: the
//! enqueue, the claim (after the worker has heard of the job), the finish. A worker loop
//! with free slots and nothing else to do registers itself here as a [`Taker`]; a store
//! that enqueues a single due job for that queue [reserves](Handoff::reserve) a slot, writes
//! the job already `running` (attempt 1, leased to the taker's worker) in the enqueue's
//! own statement, and after the commit [delivers](Reservation::deliver) it. No claim, no
//! wake-up, one commit fewer.
//!
//! Invariants:
//! - a job is written as running only for a taker that holds a reservation, and is
//!   delivered to it after its commit or given back (released to `available`) if the taker
//!   has gone away meanwhile; a delivered job is held (leased, heartbeated, given back on
//!   shutdown) like a claimed one;
//! - a taker offers slots only while it has nothing claimed waiting and no claim in flight
//!   (it believes its queue empty): a job never skips ahead of waiting jobs this process
//!   knows of;
//! - a reservation that is not used (the insert failed) is not returned: the taker's next
//!   turn of its loop sets its free slots again.
//!
//! If the enqueue's outcome is unknown (its connection broke after the commit was sent),
//! the job may be running for a worker that never got it: its lease expires and the
//! rescuer retries it, as after a worker crash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{Finish, Job, NewJob, Outcome, Store};

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
    free: AtomicUsize,
    tx: mpsc::UnboundedSender<Handed>,
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
/// written the job running instead and says on `committed` whether that was committed.
/// Only then is the job the worker's: it is leased and heartbeated from then on, and its
/// report goes to the store as any claimed job's; if not, the attempt is dropped (the job
/// was never stored, and a guest can reach nothing outside its sandbox).
pub struct RunAhead {
    /// The attempt's report, to be stored with the job by the enqueuer.
    pub report: oneshot::Sender<Finish>,
    /// Whether the job, written running, is stored.
    pub committed: oneshot::Receiver<bool>,
}

/// A registered taker. Dropping it unregisters the taker.
pub struct TakerHandle {
    taker: Arc<Taker>,
    queue: String,
    handoff: Weak<Handoff>,
}

/// One slot of a taker, reserved for one job about to be enqueued.
pub struct Reservation {
    taker: Arc<Taker>,
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
            free: AtomicUsize::new(0),
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
    /// key's job may exist already), and a taker of its queue offers a slot.
    pub fn reserve_for(&self, jobs: &[NewJob]) -> Option<Reservation> {
        match jobs {
            [job] if job.idempotency_key.is_none() && job.run_at.is_none() => {
                self.reserve(&job.queue)
            }
            _ => None,
        }
    }

    /// A slot of a taker of `queue` that offers one, if any.
    pub fn reserve(&self, queue: &str) -> Option<Reservation> {
        let takers = self.takers.lock().expect("handoff lock");
        takers.get(queue)?.iter().find_map(|taker| {
            taker
                .free
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .ok()
                .map(|_| Reservation {
                    taker: taker.clone(),
                })
        })
    }
}

impl TakerHandle {
    /// Offers `slots` free slots (0: none) until the next call.
    pub fn offer(&self, slots: usize) {
        self.taker.free.store(slots, Ordering::Release);
    }
}

impl Drop for TakerHandle {
    fn drop(&mut self) {
        self.taker.free.store(0, Ordering::Release);
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
    pub fn deliver(self, handed: Handed) -> Result<(), Box<Handed>> {
        self.taker.tx.send(handed).map_err(|e| Box::new(e.0))
    }

    /// [`Reservation::deliver`]s the committed, running job, or, if the taker has gone
    /// away, gives it back to its queue through `store` (as a worker stopping before it
    /// started the job would).
    pub async fn hand_over(self, job: Job, store: &dyn Store) {
        if let Err(handed) = self.deliver(Handed { job, ahead: None }) {
            let job = handed.job;
            let release = Finish::new(job.id, job.attempt, Outcome::Release);
            if let Err(e) = store.finish(vec![release]).await {
                tracing::warn!(job = job.id, error = %e, "could not give back a job whose worker stopped; it runs again after its lease expires");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(handoff.reserve("q").is_some(), "second slot");
        assert!(handoff.reserve("q").is_none(), "two offered, two taken");
        assert!(handoff.reserve("other").is_none(), "another queue");
        taker.offer(1);
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
        let job = Job::just_enqueued(
            super::super::NewJob::new("m", b"{}".to_vec()),
            7,
            "d".into(),
            super::super::JobState::Running,
            chrono::Utc::now(),
            chrono::Utc::now(),
        );
        let handed = Handed { job, ahead: None };
        assert_eq!(slot.deliver(handed).unwrap_err().job.id, 7);
    }
}
