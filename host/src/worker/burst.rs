//! Burst mode: the pool stops by itself once its queues have nothing left to do, for
//! hosts that can only start a process from cron.

use std::sync::Arc;
use std::time::Duration;

use super::{Running, Shutdown};
use crate::queue::Store;

/// How often a pool in burst mode asks the store whether work is left.
const LOOK_EVERY: Duration = Duration::from_millis(200);

/// Triggers `shutdown` once this pool holds no job and the store has none of `queues`
/// running (on any node) or waiting with a `run_at` within `wait` from now in a queue its
/// tenant has not paused. Later jobs are left for the next run.
pub(super) async fn stop_when_done(
    store: Arc<dyn Store>,
    queues: Vec<String>,
    wait: Duration,
    running: Running,
    shutdown: Shutdown,
) {
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    let mut look = tokio::time::interval(LOOK_EVERY);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        look.tick().await;
        if !running.lock().expect("running lock").is_empty() {
            continue;
        }
        let horizon = chrono::Utc::now()
            .checked_add_signed(wait)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        match store.has_work(&queues, horizon).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(queues = ?queues, "burst: no job left to run; stopping");
                shutdown.trigger();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "burst: asking the store for work failed"),
        }
    }
}
