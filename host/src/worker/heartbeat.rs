//! The heartbeat: leases of held jobs extended, cancellations carried to their attempts.

use std::sync::Arc;

use super::{Running, WorkerConfig};
use crate::queue::{Store, StoreEvent};

/// Extends leases and interrupts jobs that were cancelled or taken away.
pub(super) async fn heartbeat(store: Arc<dyn Store>, config: WorkerConfig, running: Running) {
    let mut events = store.subscribe();
    let mut tick = tokio::time::interval(config.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let interrupt = |ids: &[i64]| {
        let r = running.lock().expect("running lock");
        for id in ids {
            if let Some((_, c)) = r.get(id) {
                c.cancel();
            }
        }
    };
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let ids: Vec<i64> = running.lock().expect("running lock").keys().copied().collect();
                if ids.is_empty() {
                    continue;
                }
                match store.heartbeat(&config.id, &ids, config.lease).await {
                    Ok(hb) => {
                        interrupt(&hb.cancel_requested);
                        interrupt(&hb.lost);
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                }
            }
            ev = events.recv() => match ev {
                Ok(StoreEvent::CancelRequested { id }) => interrupt(&[id]),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => events = store.subscribe(),
                _ => {}
            },
        }
    }
}
