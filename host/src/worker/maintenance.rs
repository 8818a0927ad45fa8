//! Maintenance on every node: rescue of expired leases, promotion of scheduled jobs,
//! pruning of finished ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::{WorkerConfig, triggered};
use crate::queue::Store;

/// Rescue, promotion and pruning on a timer.
pub(super) async fn maintenance(
    store: Arc<dyn Store>,
    config: WorkerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let rescue_every =
        (config.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(10));
    let mut rescue = tokio::time::interval(rescue_every);
    let mut promote = tokio::time::interval(Duration::from_millis(250));
    let mut prune = tokio::time::interval(Duration::from_secs(60));
    for t in [&mut rescue, &mut promote, &mut prune] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        tokio::select! {
            _ = rescue.tick() => match store.rescue().await {
                Ok(r) if !r.retried.is_empty() || !r.failed.is_empty() => {
                    tracing::info!(retried = r.retried.len(), failed = r.failed.len(), "rescued jobs of vanished workers");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rescue failed"),
            },
            _ = promote.tick() => {
                if let Err(e) = store.promote_scheduled().await {
                    tracing::warn!(error = %e, "promoting scheduled jobs failed");
                }
            }
            _ = prune.tick() => match store.prune(config.retention).await {
                Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned finished jobs"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning failed"),
            },
            _ = triggered(&mut shutdown) => return,
        }
    }
}
