//! The completer: finish reports to the store in batches, never dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::queue::{Finish, Store};

/// Sends finish reports in batches: whatever is queued goes in one call. A batch the
/// store refuses (a value it cannot hold) is sent again report by report, and a report
/// refused alone fails its job instead ([`Finish::refused`]): no report is retried
/// forever.
pub(super) async fn completer(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Finish>) {
    const MAX_BATCH: usize = 500;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = send(&store, batch.clone()).await {
            tracing::warn!(error = %e, jobs = batch.len(), "the store refused a batch of finish reports; sending them one by one");
            for item in batch.drain(..) {
                let Err(e) = send(&store, vec![item.clone()]).await else {
                    continue;
                };
                let id = item.id;
                tracing::error!(job = id, error = %e, "the store refused a finish report; failing the job");
                if let Err(e) = send(&store, vec![item.refused()]).await {
                    tracing::error!(job = id, error = %e, "the store refused the failure too; the job is rescued when its lease expires");
                }
            }
        }
        batch.clear();
    }
}

/// Sends `items` until the store answers: an outage is waited out (never drop a report:
/// the job would run again after its lease), a refusal is returned.
async fn send(store: &Arc<dyn Store>, items: Vec<Finish>) -> Result<(), crate::queue::StoreError> {
    let mut delay = Duration::from_millis(50);
    loop {
        match store.finish(items.clone()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, jobs = items.len(), "reporting finished jobs failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => return Err(e),
        }
    }
}
