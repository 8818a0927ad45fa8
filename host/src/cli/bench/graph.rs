//! W3 of `wasmq bench`: job graphs, a fan-in (many jobs and one that depends on them
//! all) and a fan-out (one job that enqueues many children).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;

use super::{TENANT, wait_all};
use crate::queue::{JobState, NewJob, Store, StoreEvent};

/// W3: enqueues `batch` (jobs, then one depending on them all) and waits until all are
/// finished: the time in ms. Fails unless the dependent completed.
pub(super) async fn fan_in(
    store: &Arc<dyn Store>,
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    batch: Vec<NewJob>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let enqueued = store.enqueue(batch).await?;
    let last = enqueued.last().context("an empty fan-in")?.job.id;
    wait_all(store, events, enqueued.iter().map(|e| e.job.id).collect()).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    let state = store.job_state(TENANT, last).await?;
    anyhow::ensure!(
        state == Some(JobState::Completed),
        "the fan-in's dependent ended {state:?}"
    );
    Ok(ms)
}

/// W3 fan-out: enqueues `job` (a fan-out of `n` children) and waits until it and its
/// children are finished: the time in ms. Fails unless all completed.
pub(super) async fn fan_out(
    store: &Arc<dyn Store>,
    events: &mut tokio::sync::broadcast::Receiver<StoreEvent>,
    job: NewJob,
    n: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let id = store.enqueue(vec![job]).await?.remove(0).job.id;
    wait_all(store, events, HashSet::from([id])).await?;
    let parent = store
        .get(TENANT, id)
        .await?
        .context("the fan-out vanished")?;
    anyhow::ensure!(
        parent.state == JobState::Completed,
        "the fan-out ended {:?}: {:?}",
        parent.state,
        parent.error
    );
    let result: serde_json::Value =
        serde_json::from_slice(parent.result.as_deref().unwrap_or_default())?;
    let children: HashSet<i64> = result["children"]
        .as_array()
        .context("the fan-out's result names no children")?
        .iter()
        .filter_map(serde_json::Value::as_i64)
        .collect();
    anyhow::ensure!(children.len() == n, "{} children, not {n}", children.len());
    wait_all(store, events, children.clone()).await?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    for child in children {
        let state = store.job_state(TENANT, child).await?;
        anyhow::ensure!(
            state == Some(JobState::Completed),
            "a child ended {state:?}"
        );
    }
    Ok(ms)
}
