//! Group commit of finish reports: concurrent [`Driver::finish`] calls are coalesced, a
//! caller queues its reports and whoever holds the write turn applies every queued report
//! in one transaction (one fsync), answering each caller separately.
//!
//! [`Driver::finish`]: crate::queue::Driver::finish

use chrono::Utc;
use tokio::sync::oneshot;

use super::SqliteDriver;
use super::rows::{clamp_i64, db_err, get, history_entry, json_text, micros, progress_text};
use super::sql::FINISH;
use crate::queue::driver::{Applied, Finished, outcome_columns, outcome_values};
use crate::queue::{Finish, JobState, MAX_HISTORY, StoreError};

/// The answer to one caller's reports.
type Answer = Result<Finished, StoreError>;

/// One caller's reports, waiting for the next group commit.
pub(super) struct PendingFinish {
    items: Vec<Finish>,
    reply: oneshot::Sender<Answer>,
}

impl SqliteDriver {
    /// Queues `items` for the next group commit and waits for their answer. The commit runs
    /// in its own task, so a caller that gives up waiting cannot abandon the reports of
    /// the others it collected.
    pub(super) async fn finish_grouped(&self, items: Vec<Finish>) -> Answer {
        let (reply, answer) = oneshot::channel();
        self.pending_finishes
            .lock()
            .expect("finish queue lock")
            .push(PendingFinish { items, reply });
        let driver = self.clone();
        tokio::spawn(async move { driver.drain_finishes().await });
        answer.await.map_err(|_| {
            StoreError::Unavailable("the finish reports were not applied; try again".into())
        })?
    }

    /// Applies every queued finish report (of any caller) in one transaction.
    async fn drain_finishes(&self) {
        let _turn = self.finish_turn.lock().await;
        let pending =
            std::mem::take(&mut *self.pending_finishes.lock().expect("finish queue lock"));
        if pending.is_empty() {
            return;
        }
        let (groups, replies): (Vec<_>, Vec<_>) =
            pending.into_iter().map(|p| (p.items, p.reply)).unzip();
        tracing::trace!(
            callers = groups.len(),
            reports = groups.iter().map(Vec::len).sum::<usize>(),
            "group commit of finish reports"
        );
        match self.finish_group(&groups).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(Ok(answer));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// Applies the finish reports of several callers in one transaction; answers in order.
    async fn finish_group(&self, groups: &[Vec<Finish>]) -> Result<Vec<Finished>, StoreError> {
        let now = Utc::now();
        let now_us = micros(now);
        let mut tx = self.begin_write_with(false).await?;
        let mut answers = Vec::with_capacity(groups.len());
        for items in groups {
            let mut applied = Vec::with_capacity(items.len());
            // Jobs finished for good that have dependents, with their state.
            let mut ended = Vec::new();
            for item in items {
                let (state, error) = outcome_columns(&item.outcome);
                let (result, retry_at) = outcome_values(&item.outcome);
                let row = sqlx::query(FINISH)
                    .bind(item.id)
                    .bind(i64::from(item.attempt))
                    .bind(state.as_str())
                    .bind(result)
                    .bind(error.as_ref().map(json_text))
                    .bind(now_us)
                    .bind(retry_at.map(micros))
                    .bind(error.as_ref().map(|e| history_entry(item.attempt, now, e)))
                    .bind(json_text(&item.usage))
                    .bind(item.log.as_str())
                    .bind(clamp_i64(item.log_dropped))
                    .bind(item.progress.as_ref().map(progress_text))
                    .bind(MAX_HISTORY as i64)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                if row.is_some() && state == JobState::Completed {
                    super::children::insert(&mut tx, item.id, &item.children, now_us).await?;
                }
                applied.push(match &row {
                    Some(row) => {
                        if state.is_finished() && get::<i64>(row, "dependents")? > 0 {
                            ended.push((item.id, state));
                        }
                        Some(Applied {
                            state,
                            queue: get(row, "queue")?,
                        })
                    }
                    None => None,
                });
            }
            let released = super::deps::release(&mut tx, ended, now_us).await?;
            answers.push(Finished { applied, released });
        }
        tx.commit().await.map_err(db_err)?;
        Ok(answers)
    }
}
