//! Periodic jobs: a schedule is a job template and a cron expression; every node with
//! maintenance runs a [`Scheduler`] that enqueues one job per tick.
//!
//! Exactly one job per tick, with any number of nodes, however they restart: a tick's job
//! is enqueued under an idempotency key made of the schedule's name and the tick
//! ([`tick_key`]), so two nodes firing the same tick make one job, and the schedule moves
//! to its next tick only by a compare-and-set on the tick and revision it read
//! ([`crate::queue::Store::advance_schedule`]). A node that dies between the two leaves
//! the tick due; the next node finds its job by the key and advances.

pub mod cron;
mod ticker;

use std::time::Duration;

use chrono::{DateTime, Utc};

pub use cron::{CronError, CronExpr};
pub use ticker::Scheduler;

use crate::queue::CatchUp;

/// Idempotency keys that begin with this are the scheduler's; a client's may not.
pub const KEY_PREFIX: &str = "wasmq:schedule:";

/// A tick later than this was missed (no node ran at the time), and `catch_up` decides.
pub const ON_TIME: Duration = Duration::from_secs(60);

/// The idempotency key of schedule `name`'s job for `tick`.
pub fn tick_key(name: &str, tick: DateTime<Utc>) -> String {
    format!("{KEY_PREFIX}{name}:{}", tick.timestamp())
}

/// The schedule that made a job, from its idempotency key.
pub fn schedule_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    rest.rsplit_once(':').map(|(name, _)| name)
}

/// What one due tick does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Enqueue the tick's job.
    pub enqueue: bool,
    /// The schedule's next tick, or `None` if the expression names no later instant.
    pub next: Option<DateTime<Utc>>,
}

/// The policy for a tick due at `tick`, handled at `now`: on time, it fires and the next
/// tick follows it (a brief stall catches up tick by tick); missed, it fires only with
/// [`CatchUp::One`] and the schedule jumps past `now`, so downtime never makes a storm.
pub fn decide(
    cron: &CronExpr,
    catch_up: CatchUp,
    tick: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Decision {
    let on_time = now.signed_duration_since(tick).to_std().unwrap_or_default() <= ON_TIME;
    if on_time {
        Decision {
            enqueue: true,
            next: cron.next_after(tick),
        }
    } else {
        Decision {
            enqueue: catch_up == CatchUp::One,
            next: cron.next_after(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, s).unwrap()
    }

    #[test]
    fn keys_name_their_schedule_and_tick() {
        let key = tick_key("nightly-report", at(3, 0, 0));
        assert_eq!(schedule_of(&key), Some("nightly-report"));
        assert_ne!(key, tick_key("nightly-report", at(3, 0, 1)));
        assert_eq!(schedule_of("order-42"), None);
    }

    #[test]
    fn an_on_time_tick_fires_and_the_next_follows_it() {
        let every_second = CronExpr::parse("* * * * * *", "UTC").unwrap();
        let d = decide(&every_second, CatchUp::Skip, at(10, 0, 0), at(10, 0, 3));
        assert_eq!(
            d,
            Decision {
                enqueue: true,
                next: Some(at(10, 0, 1))
            }
        );
    }

    #[test]
    fn a_missed_tick_skips_or_fires_once_and_the_schedule_jumps_past_now() {
        let hourly = CronExpr::parse("@hourly", "UTC").unwrap();
        let (tick, now) = (at(1, 0, 0), at(5, 30, 0));
        let skip = decide(&hourly, CatchUp::Skip, tick, now);
        assert_eq!(
            skip,
            Decision {
                enqueue: false,
                next: Some(at(6, 0, 0))
            }
        );
        let one = decide(&hourly, CatchUp::One, tick, now);
        assert_eq!(
            one,
            Decision {
                enqueue: true,
                next: Some(at(6, 0, 0))
            }
        );
    }
}
