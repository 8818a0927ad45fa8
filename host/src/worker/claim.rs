//! A queue's claim loop: claims ahead of its slots, takes hand-offs while idle, starts
//! jobs as slots free up, and gives back what it holds on shutdown.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{Running, WorkerConfig, triggered};
use crate::queue::handoff::Handed;
use crate::queue::{Finish, Job, Outcome as StoreOutcome, Store, StoreEvent};
use crate::runtime::{CancelHandle, Runtime};

/// A claim sent to the store and not yet answered.
type ClaimFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Job>, crate::queue::StoreError>> + Send>,
>;

pub(super) struct QueueLoop {
    pub(super) store: Arc<dyn Store>,
    pub(super) runtime: Runtime,
    pub(super) config: WorkerConfig,
    pub(super) queue: String,
    pub(super) concurrency: usize,
    pub(super) running: Running,
    pub(super) finish: mpsc::UnboundedSender<Finish>,
    /// Mean wall time of this queue's recent attempts in µs (a moving average; 0 until
    /// the first one ends). It sets how far ahead the loop claims.
    pub(super) mean_us: Arc<AtomicU64>,
}

/// Prefetched jobs wait at most about this long for a slot: short jobs are claimed
/// several rounds ahead (bigger claims, fewer statements), long ones one round ahead
/// (a job enqueued with a higher priority is not stuck behind a long prefetch).
const CLAIM_AHEAD: Duration = Duration::from_millis(20);

/// On shutdown, how long a claim in flight may take to answer (its jobs are then given
/// back).
const SHUTDOWN_CLAIM_WAIT: Duration = Duration::from_secs(5);

/// At most this many rounds (`concurrency` jobs each) are claimed ahead.
const MAX_ROUNDS_AHEAD: usize = 8;

impl QueueLoop {
    /// How many claimed jobs may wait in `ready`: `concurrency` times the rounds that
    /// fit in [`CLAIM_AHEAD`] at the recent mean attempt time (1 to
    /// [`MAX_ROUNDS_AHEAD`]): more rounds mean fewer claims per job while attempts are
    /// short, one round keeps a long job from holding others back (docs/perf-log.md).
    fn ahead(&self) -> usize {
        let mean = self.mean_us.load(Ordering::Relaxed);
        // No attempt has ended yet (mean 0): one round.
        let rounds = (CLAIM_AHEAD.as_micros() as u64)
            .checked_div(mean)
            .map_or(1, |r| r.clamp(1, MAX_ROUNDS_AHEAD as u64) as usize);
        rounds * self.concurrency
    }

    /// Claims ahead, with at most one claim in flight while jobs run: up to
    /// `concurrency` jobs run and up to [`QueueLoop::ahead`] more wait in `ready`. A
    /// claim is sent as soon as `ready` holds less than a round, for everything that
    /// fits, so the next jobs arrive while the current ones run and a busy queue makes
    /// one claim per several rounds. Prefetched jobs are leased and heartbeated like
    /// running ones, and given back on shutdown.
    pub(super) async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.store.subscribe();
        let mut jobs: JoinSet<()> = JoinSet::new();
        let mut ready: VecDeque<(Job, CancelHandle)> = VecDeque::new();
        let mut backoff = Duration::from_millis(50);
        // Whether the last claim may have left jobs behind (it took any).
        let mut more = true;
        // The claim in flight.
        let mut claiming: Option<ClaimFuture> = None;
        // Whether a wake-up came while a claim was in flight: the claim may have missed
        // the job it announced, so its being short does not mean the queue is empty.
        let mut woke = false;
        // After a failed claim, no new one before this.
        let mut retry_at = tokio::time::Instant::now();
        // The next look without a wake-up. A deadline, not a sleep made anew on each
        // turn: a stream of other events must not postpone it forever.
        let mut poll_at = tokio::time::Instant::now() + self.config.poll;
        // Jobs enqueued in this process while this loop is idle come straight here.
        // A pool serving one tenant takes none: the hand-off knows queues, not tenants.
        let handoff = self
            .store
            .handoff()
            .filter(|_| self.config.tenant.is_none());
        let (taker, mut handed) = match handoff {
            Some(handoff) => {
                let (taker, handed) =
                    handoff.register(&self.queue, &self.config.id, self.config.lease);
                (Some(taker), Some(handed))
            }
            None => (None, None),
        };
        loop {
            if *shutdown.borrow() {
                break;
            }
            while jobs.try_join_next().is_some() {}
            while jobs.len() < self.concurrency {
                let Some((job, cancel)) = ready.pop_front() else {
                    break;
                };
                self.start(job, cancel, &mut jobs);
            }
            let room = (self.concurrency + self.ahead()).saturating_sub(jobs.len() + ready.len());
            if claiming.is_none()
                && more
                && ready.len() < self.concurrency
                && room > 0
                && tokio::time::Instant::now() >= retry_at
            {
                let (store, queue, id, lease, tenant) = (
                    self.store.clone(),
                    self.queue.clone(),
                    self.config.id.clone(),
                    self.config.lease,
                    self.config.tenant.clone(),
                );
                let claim: ClaimFuture = Box::pin(async move {
                    store
                        .claim_for(tenant.as_deref(), &queue, &id, room, lease)
                        .await
                });
                claiming = Some(claim);
                woke = false;
                poll_at = tokio::time::Instant::now() + self.config.poll;
            }
            if let Some(taker) = &taker {
                // Idle: nothing claimed waits, no claim is out, the queue looked empty.
                let idle = claiming.is_none() && !more && ready.is_empty();
                taker.offer(if idle {
                    self.concurrency.saturating_sub(jobs.len())
                } else {
                    0
                });
            }
            tokio::select! {
                claimed = async { claiming.as_mut().expect("a claim in flight").await }, if claiming.is_some() => {
                    claiming = None;
                    match claimed {
                        Ok(claimed) => {
                            backoff = Duration::from_millis(50);
                            // A fair claim gives each tenant its share, so a short one
                            // may leave jobs behind: only an empty claim means empty.
                            more = !claimed.is_empty() || woke;
                            self.hold(claimed, &mut ready);
                        }
                        Err(e) => {
                            tracing::warn!(queue = %self.queue, error = %e, "claim failed; retrying");
                            retry_at = tokio::time::Instant::now() + backoff;
                            more = true;
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                        }
                    }
                }
                // A job ended: a slot is free.
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                Some(Handed { job, ahead }) = async { handed.as_mut().expect("a taker").recv().await }, if handed.is_some() => {
                    if let Some(taker) = &taker {
                        taker.received();
                    }
                    match ahead {
                        None => self.hold(vec![job], &mut ready),
                        // Busy since it offered the slot (a claim came back meanwhile):
                        // refused, so its enqueue stores it as usual and no job runs
                        // beyond the concurrency or ahead of claimed ones.
                        Some(ahead) if jobs.len() >= self.concurrency || !ready.is_empty() => {
                            drop(ahead)
                        }
                        Some(ahead) => self.run_ahead(job, ahead, &mut jobs),
                    }
                }
                ev = events.recv() => match ev {
                    Ok(StoreEvent::JobsAvailable { queue }) if queue == self.queue => {
                        more = true;
                        woke = true;
                    }
                    Ok(StoreEvent::Reconnected) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        more = true;
                        woke = true;
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        events = self.store.subscribe();
                    }
                },
                _ = tokio::time::sleep_until(retry_at), if claiming.is_none() && more && retry_at > tokio::time::Instant::now() => {}
                _ = tokio::time::sleep_until(poll_at) => {
                    more = true;
                    poll_at = tokio::time::Instant::now() + self.config.poll;
                }
                _ = triggered(&mut shutdown) => break,
            }
        }
        // No more hand-offs; jobs handed over meanwhile are given back with the others.
        drop(taker);
        if let Some(mut handed) = handed {
            handed.close();
            // A job to run ahead of its insert is refused by dropping it: its enqueuer
            // enqueues it as usual (or, if it had already stored it running for this
            // worker, gives it back to the queue).
            while let Ok(Handed { job, ahead }) = handed.try_recv() {
                if ahead.is_none() {
                    self.hold(vec![job], &mut ready);
                }
            }
        }
        // A claim in flight may already hold jobs: take them, to give them back. One
        // that does not answer in time leaves its jobs to the rescuer (lease expiry).
        if let Some(claim) = claiming
            && let Ok(Ok(claimed)) = tokio::time::timeout(SHUTDOWN_CLAIM_WAIT, claim).await
        {
            self.hold(claimed, &mut ready);
        }
        // Prefetched jobs never started: give them back at once.
        for (job, _) in ready.drain(..) {
            self.running.lock().expect("running lock").remove(&job.id);
            let _ = self
                .finish
                .send(Finish::new(job.id, job.attempt, StoreOutcome::Release));
        }
        self.drain(jobs).await;
    }

    /// Records claimed jobs as held (the heartbeat extends their leases) and queues them.
    fn hold(&self, claimed: Vec<Job>, ready: &mut VecDeque<(Job, CancelHandle)>) {
        let mut running = self.running.lock().expect("running lock");
        for job in claimed {
            let cancel = CancelHandle::new();
            running.insert(job.id, (job.attempt, cancel.clone()));
            ready.push_back((job, cancel));
        }
    }
    /// Shutdown: running jobs get the grace period; then they are interrupted and
    /// given back (their reports say `Release`).
    async fn drain(&self, mut jobs: JoinSet<()>) {
        if jobs.is_empty() {
            return;
        }
        tracing::info!(queue = %self.queue, running = jobs.len(), grace = ?self.config.grace, "waiting for running jobs");
        let all_done = async { while jobs.join_next().await.is_some() {} };
        if tokio::time::timeout(self.config.grace, all_done)
            .await
            .is_err()
        {
            tracing::warn!(queue = %self.queue, jobs = jobs.len(), "grace period over; giving jobs back");
            for (_, c) in self.running.lock().expect("running lock").values() {
                c.release();
            }
            while jobs.join_next().await.is_some() {}
        }
    }
}
