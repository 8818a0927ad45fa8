//! Notifications between nodes: a background task LISTENs on a dedicated connection for
//! `wasmq_jobs` (payload: a queue name), `wasmq_cancel` (a job id), `wasmq_finished`
//! (comma-separated job ids), `wasmq_schedules` and `wasmq_pauses` (a queue name), sent inside the transactions that cause them, so delivered
//! on commit only. It forwards them to the core's subscribers, drops the ones this node
//! sent (they carry its id: the core has told its own process already), and reconnects
//! with backoff when the database restarts, then sends [`StoreEvent::Reconnected`].

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use super::rows::db_err;
use crate::queue::{StoreError, StoreEvent};

const CHANNEL_JOBS: &str = "wasmq_jobs";
const CHANNEL_CANCEL: &str = "wasmq_cancel";
const CHANNEL_FINISHED: &str = "wasmq_finished";
const CHANNEL_SCHEDULES: &str = super::schedules::CHANNEL_SCHEDULES;
const CHANNEL_PAUSES: &str = super::control::CHANNEL_PAUSES;

/// The listening task; stops when dropped.
pub(super) struct ListenerTask(JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts listening on `url` for the node `node`, forwarding to `events`; returns once the
/// first connection listens (or failed).
pub(super) async fn start(
    url: &str,
    events: broadcast::Sender<StoreEvent>,
    node: Arc<str>,
) -> Result<ListenerTask, StoreError> {
    let (ready_tx, ready_rx) = oneshot::channel();
    let task = ListenerTask(tokio::spawn(listen(url.to_owned(), events, node, ready_tx)));
    match ready_rx.await {
        Ok(Ok(())) => Ok(task),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StoreError::Unavailable(
            "the notification listener stopped".into(),
        )),
    }
}

/// Runs the LISTEN loop until the store is dropped. The first outcome goes to `ready`.
async fn listen(
    url: String,
    events: broadcast::Sender<StoreEvent>,
    node: Arc<str>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let mut ready = Some(ready);
    let mut delay = Duration::from_millis(50);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener
                .listen_all([
                    CHANNEL_JOBS,
                    CHANNEL_CANCEL,
                    CHANNEL_FINISHED,
                    CHANNEL_SCHEDULES,
                    CHANNEL_PAUSES,
                ])
                .await?;
            Ok::<_, sqlx::Error>(listener)
        }
        .await;
        let mut listener = match connected {
            Ok(listener) => listener,
            Err(e) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Err(db_err(e)));
                    return;
                }
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reconnect the notification listener");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        match ready.take() {
            Some(ready) => {
                let _ = ready.send(Ok(()));
            }
            None => {
                tracing::info!("notification listener reconnected");
                let _ = events.send(StoreEvent::Reconnected);
            }
        }
        delay = Duration::from_millis(50);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    if let Some(event) =
                        parse_notification(notification.channel(), notification.payload(), &node)
                    {
                        // No receivers is fine: nobody is waiting.
                        let _ = events.send(event);
                    }
                }
                Ok(None) => {
                    tracing::warn!("notification listener lost its connection; reconnecting");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "notification listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

/// The event a notification stands for; `None` for one this store (`node`) sent, whose
/// event it has already sent itself.
fn parse_notification(channel: &str, payload: &str, node: &str) -> Option<StoreEvent> {
    let payload = match payload.split_at_checked(node.len()) {
        Some((sender, rest)) if rest.starts_with(' ') && is_node_id(sender) => {
            if sender == node {
                return None;
            }
            &rest[1..]
        }
        // From a store that does not say who it is (a version before node ids).
        _ => payload,
    };
    match channel {
        CHANNEL_JOBS => Some(StoreEvent::JobsAvailable {
            queue: payload.to_owned(),
        }),
        CHANNEL_CANCEL => payload
            .parse()
            .ok()
            .map(|id| StoreEvent::CancelRequested { id }),
        CHANNEL_FINISHED => Some(StoreEvent::JobsFinished {
            ids: payload
                .split(',')
                .filter_map(|id| id.parse().ok())
                .collect(),
        }),
        CHANNEL_SCHEDULES => Some(StoreEvent::SchedulesChanged),
        CHANNEL_PAUSES => Some(StoreEvent::QueuePauseChanged {
            queue: payload.to_owned(),
        }),
        _ => None,
    }
}

/// Whether `s` looks like a node id: 16 lowercase hex digits.
fn is_node_id(s: &str) -> bool {
    s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_become_events() {
        const ME: &str = "00000000000000aa";
        let emails = Some(StoreEvent::JobsAvailable {
            queue: "emails".into(),
        });
        assert_eq!(parse_notification(CHANNEL_JOBS, "emails", ME), emails);
        // Another node's: its id is stripped.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "0123456789abcdef emails", ME),
            emails
        );
        assert_eq!(
            parse_notification(CHANNEL_CANCEL, "42", ME),
            Some(StoreEvent::CancelRequested { id: 42 })
        );
        assert_eq!(
            parse_notification(CHANNEL_FINISHED, "0123456789abcdef 1,2,3", ME),
            Some(StoreEvent::JobsFinished { ids: vec![1, 2, 3] })
        );
        assert_eq!(parse_notification("other", "x", ME), None);
        // This store's own: it has told its subscribers already.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "00000000000000aa emails", ME),
            None
        );
        assert_eq!(
            parse_notification(CHANNEL_FINISHED, "00000000000000aa 7", ME),
            None
        );
        // A queue name with a space that is not an id stays whole.
        assert_eq!(
            parse_notification(CHANNEL_JOBS, "weekly reports", ME),
            Some(StoreEvent::JobsAvailable {
                queue: "weekly reports".into()
            })
        );
    }
}
